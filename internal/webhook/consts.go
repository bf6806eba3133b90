// Package webhook is wif's Kubernetes mutating admission webhook, a drop-in
// for Azure Workload Identity v1.6.0's (pkg/webhook): pods labelled
// azure.workload.identity/use=true get the Azure SDK's environment variables
// and a projected service-account token volume, and, when annotated, the
// managed-identity sidecar served by `wif imds`.
//
// The package has three layers: Mutator (pure: a pod and its service account
// in, a mutated pod, warnings or a denial out), Handler (AdmissionReview over
// HTTP, the service-account lookup, the JSONPatch, metrics) and CertManager
// (a self-managed serving certificate kept in a Secret, with the caBundle of
// the webhook's own MutatingWebhookConfiguration kept in step).
package webhook

// Labels and annotations, as Azure Workload Identity names them.
const (
	// UseLabel selects pods (through the webhook configuration's objectSelector).
	UseLabel = "azure.workload.identity/use"
	// ClientIDAnnotation on a ServiceAccount names the identity's client id.
	ClientIDAnnotation = "azure.workload.identity/client-id"
	// TenantIDAnnotation on a ServiceAccount names its tenant.
	TenantIDAnnotation = "azure.workload.identity/tenant-id"
	// TokenExpirationAnnotation on a ServiceAccount or Pod sets the projected
	// token's expirationSeconds; the pod's wins.
	TokenExpirationAnnotation = "azure.workload.identity/service-account-token-expiration" // #nosec G101 -- an annotation key
	// SkipContainersAnnotation on a Pod lists ';'-separated containers left untouched.
	SkipContainersAnnotation = "azure.workload.identity/skip-containers"
	// InjectProxySidecarAnnotation on a Pod (any value) asks for the sidecar.
	InjectProxySidecarAnnotation = "azure.workload.identity/inject-proxy-sidecar"
	// ProxySidecarPortAnnotation on a Pod sets the sidecar's port.
	ProxySidecarPortAnnotation = "azure.workload.identity/proxy-sidecar-port"
	// ProxySidecarRedirectAnnotation on a Pod ("true") also asks for the
	// privileged init container that redirects 169.254.169.254:80 to the
	// sidecar, for code that only knows IMDS. wif's own addition: without it
	// the SDKs that honour IDENTITY_ENDPOINT need no privileged container.
	ProxySidecarRedirectAnnotation = "azure.workload.identity/proxy-sidecar-redirect"
)

// Limits and defaults.
const (
	MinTokenExpiration     = int64(3600)
	MaxTokenExpiration     = int64(86400)
	DefaultTokenExpiration = int64(3600)
	DefaultProxyPort       = int32(8000)
	// DefaultAudience is the projected token's audience.
	DefaultAudience = "api://AzureADTokenExchange"
)

// Names and paths of what is injected.
const (
	EnvClientID         = "AZURE_CLIENT_ID"
	EnvTenantID         = "AZURE_TENANT_ID"
	EnvFederatedToken   = "AZURE_FEDERATED_TOKEN_FILE" // #nosec G101 -- an env var name
	EnvAuthorityHost    = "AZURE_AUTHORITY_HOST"
	EnvIdentityEndpoint = "IDENTITY_ENDPOINT"
	EnvIdentityHeader   = "IDENTITY_HEADER"
	// EnvMSIEndpoint and EnvMSISecret are App Service's older pair (api-
	// version 2017-09-01), which az and msrestazure clients read; App
	// Service sets both pairs, to the same endpoint and secret.
	EnvMSIEndpoint       = "MSI_ENDPOINT"
	EnvMSISecret         = "MSI_SECRET"
	EnvProxyPort         = "PROXY_PORT"
	VolumeNamePrefix     = "azure-workload-identity-reserved-"
	TokenFileRelPath     = "token/azure-identity-token"
	VolumeMountPath      = "/var/run/secrets/azure/wi"
	TokenFilePath        = VolumeMountPath + "/" + TokenFileRelPath
	LegacyTokenFilePath  = "/var/run/secrets/azure/tokens/azure-identity-token" // releases up to v1.5.1
	ProxyContainerName   = "azwi-proxy"
	ProxyInitName        = "azwi-proxy-init"
	DefaultProxyImage    = "ghcr.io/wif-project/wif:latest"
	DefaultProxyInitImg  = "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0"
	identityEndpointPath = "/msi/token"
)
