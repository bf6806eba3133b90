package controller

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The kinds reconciled: Azure Service Operator v2's, so the same manifests
// target Entra (through ASO) and wif.
var (
	IdentityGVR   = schema.GroupVersionResource{Group: "managedidentity.azure.com", Version: "v1api20230131", Resource: "userassignedidentities"}
	CredentialGVR = schema.GroupVersionResource{Group: "managedidentity.azure.com", Version: "v1api20230131", Resource: "federatedidentitycredentials"}
)

// Annotations the controller reads.
const (
	// ReconcilePolicyAnnotation is ASO's: manage (default), skip or
	// detach-on-delete.
	ReconcilePolicyAnnotation = "serviceoperator.azure.com/reconcile-policy"
	// OptInAnnotation set to "true" puts an object in wif's care when its
	// namespace is not watched (--watch-namespaces).
	OptInAnnotation = "wif.io/reconcile"
	// ClaimsExpressionAnnotation carries a credential's
	// claimsMatchingExpression (wif's extension; replaces spec.subject).
	ClaimsExpressionAnnotation = "wif.io/claims-matching-expression"
	// Finalizer keeps an object until its wif counterpart is removed.
	Finalizer = "wif.io/directory"
)

// The reconcile policies.
const (
	PolicyManage         = "manage"
	PolicySkip           = "skip"
	PolicyDetachOnDelete = "detach-on-delete"
)

// resourceRef is genruntime.KnownResourceReference: an owner by name (in
// the object's namespace) or by ARM id.
type resourceRef struct {
	Name  string `json:"name,omitempty"`
	ARMID string `json:"armId,omitempty"`
}

// configMapRef is genruntime.ConfigMapReference (a value read from a key
// of a ConfigMap in the object's namespace) and ConfigMapDestination (a
// value written to one).
type configMapRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type identityOperatorSpec struct {
	ConfigMaps *struct {
		ClientID    *configMapRef `json:"clientId,omitempty"`
		PrincipalID *configMapRef `json:"principalId,omitempty"`
		TenantID    *configMapRef `json:"tenantId,omitempty"`
	} `json:"configMaps,omitempty"`
	Secrets *struct {
		ClientID    *configMapRef `json:"clientId,omitempty"`
		PrincipalID *configMapRef `json:"principalId,omitempty"`
		TenantID    *configMapRef `json:"tenantId,omitempty"`
	} `json:"secrets,omitempty"`
}

type identitySpec struct {
	AzureName    string                `json:"azureName,omitempty"`
	Location     string                `json:"location,omitempty"`
	Owner        *resourceRef          `json:"owner,omitempty"`
	Tags         map[string]string     `json:"tags,omitempty"`
	OperatorSpec *identityOperatorSpec `json:"operatorSpec,omitempty"`
}

type credentialSpec struct {
	AzureName         string        `json:"azureName,omitempty"`
	Owner             *resourceRef  `json:"owner,omitempty"`
	Audiences         []string      `json:"audiences,omitempty"`
	Issuer            string        `json:"issuer,omitempty"`
	IssuerFromConfig  *configMapRef `json:"issuerFromConfig,omitempty"`
	Subject           string        `json:"subject,omitempty"`
	SubjectFromConfig *configMapRef `json:"subjectFromConfig,omitempty"`
}

// condition is ASO's conditions.Condition.
type condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Severity           string `json:"severity,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime,omitempty"`
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	Reason             string `json:"reason,omitempty"`
	Message            string `json:"message,omitempty"`
}
