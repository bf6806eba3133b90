package webhook

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// IdentityRefAnnotation on a ServiceAccount names a UserAssignedIdentity
// (managedidentity.azure.com, reconciled by wif controller) of its
// namespace instead of copying its client id: the webhook injects the
// identity's status.clientId.
const IdentityRefAnnotation = "wif.io/identity"

// ErrIdentityNotReady: the named identity does not exist or has no client
// id yet.
var ErrIdentityNotReady = errors.New("identity not ready")

// IdentityResolver finds the client id of a UserAssignedIdentity.
type IdentityResolver interface {
	IdentityClientID(ctx context.Context, namespace, name string) (string, error)
}

// DynamicIdentities resolves identities with the API server.
type DynamicIdentities struct{ Client dynamic.Interface }

var identityGVR = schema.GroupVersionResource{Group: "managedidentity.azure.com", Version: "v1api20230131", Resource: "userassignedidentities"}

// IdentityClientID implements IdentityResolver.
func (d DynamicIdentities) IdentityClientID(ctx context.Context, namespace, name string) (string, error) {
	u, err := d.Client.Resource(identityGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("%w: UserAssignedIdentity %s/%s does not exist", ErrIdentityNotReady, namespace, name)
	}
	if err != nil {
		return "", fmt.Errorf("read UserAssignedIdentity %s/%s: %w", namespace, name, err)
	}
	id, _, _ := unstructured.NestedString(u.Object, "status", "clientId")
	if id == "" {
		return "", fmt.Errorf("%w: UserAssignedIdentity %s/%s has no status.clientId yet (is wif controller reconciling it?)", ErrIdentityNotReady, namespace, name)
	}
	return id, nil
}
