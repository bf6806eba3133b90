package cli

import (
	"github.com/wif-project/wif/internal/telemetry"

	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/tlsutil"
	"github.com/wif-project/wif/internal/webhook"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type webhookFlags struct {
	listen, tenantID, authorityHost, audience, kubeconfig, webhookConfigName, otlpEndpoint string
	tokenPathLegacy                                                                        bool
	tlsCertFile, tlsKeyFile, certSecretName, namespace, serviceName                        string
	tlsHosts                                                                               []string
	certValidity, certCheckInterval                                                        time.Duration
	proxyImage, proxyInitImage, proxyNative, readyFile, logLevel                           string
	tlsMinVersion                                                                          string
}

func newWebhookCommand(streams Streams) *cobra.Command {
	var f webhookFlags
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Kubernetes mutating admission webhook, a drop-in for Azure Workload Identity's",
		Long: `wif webhook injects the Azure SDK's workload identity settings into pods
labelled azure.workload.identity/use=true, exactly as Azure Workload Identity
v1.6.0's webhook does (AZURE_CLIENT_ID, AZURE_TENANT_ID,
AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST and a projected service
account token), plus the managed-identity sidecar (wif imds) on request.

It serves HTTPS on --listen at /mutate-v1-pod, with /healthz, /readyz and
/metrics. The serving certificate is either given (--tls-cert-file and
--tls-key-file, reloaded when they change) or managed: kept in the Secret
--cert-secret-name in --namespace, renewed before expiry, with the caBundle of
the MutatingWebhookConfiguration --webhook-config-name kept in step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			logger, err := webhookLogger(streams.ErrOut, f.logLevel)
			if err != nil {
				return err
			}
			tp, err := telemetry.New(cmd.Context(), telemetry.Options{Endpoint: f.otlpEndpoint, ServiceName: "wif-webhook", LookupEnv: lookupEnvFrom(cmd.Context())})
			if err != nil {
				return err
			}
			defer flushTraces(tp, logger)
			logger = slog.New(telemetry.LogHandler(logger.Handler()))
			restConfig, err := kubeConfig(f.kubeconfig)
			if err != nil {
				return err
			}
			restConfig.UserAgent = "wif-webhook"
			restConfig.QPS, restConfig.Burst = 50, 100
			client, err := kubernetes.NewForConfig(restConfig)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			dyn, err := dynamic.NewForConfig(restConfig)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			opts := webhook.ServeOptions{
				Identities: webhook.DynamicIdentities{Client: dyn},
				Config: webhook.Config{
					TenantID: f.tenantID, AuthorityHost: f.authorityHost, Audience: f.audience,
					LegacyTokenPath: f.tokenPathLegacy, ProxyImage: f.proxyImage, ProxyInitImage: f.proxyInitImage,
				},
				NativeSidecarMode: f.proxyNative,
				Client:            client,
				CertFile:          f.tlsCertFile,
				KeyFile:           f.tlsKeyFile,
				Logger:            logger,
				Registry:          httpx.NewRegistry(),
				TLSMinVersion:     tlsVersions[f.tlsMinVersion],
				TracerProvider:    tp,
			}
			if err := opts.Config.Validate(); err != nil {
				return err
			}
			if f.tlsCertFile == "" {
				ns := f.namespace
				if ns == "" {
					ns = inClusterNamespace()
				}
				hosts := f.tlsHosts
				if len(hosts) == 0 {
					hosts = []string{f.serviceName + "." + ns + ".svc", f.serviceName + "." + ns + ".svc.cluster.local"}
				}
				opts.Certs = &webhook.CertManager{
					Client: client, Namespace: ns, SecretName: f.certSecretName, Hosts: hosts,
					WebhookConfigName: f.webhookConfigName, Validity: f.certValidity,
					CheckInterval: f.certCheckInterval, Logger: logger,
				}
			}
			ln, err := httpx.Listen(f.listen)
			if err != nil {
				return err
			}
			opts.Listener = ln
			if f.readyFile != "" {
				opts.Ready = func() {
					if err := tlsutil.WriteFileAtomic(f.readyFile, []byte("https://"+ln.Addr().String()), 0o644); err != nil {
						logger.Error("write ready file", "err", err)
					}
				}
			}
			return webhook.Serve(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", ":9443", "HTTPS address to serve admission reviews, probes and metrics on")
	fl.StringVar(&f.tenantID, "tenant-id", "", "default tenant (AZURE_TENANT_ID) for service accounts without azure.workload.identity/tenant-id (required)")
	fl.StringVar(&f.authorityHost, "authority-host", "https://login.microsoftonline.com/", "AZURE_AUTHORITY_HOST: the token service's URL (a trailing / is added)")
	fl.StringVar(&f.audience, "audience", webhook.DefaultAudience, "audience of the projected service account token")
	fl.BoolVar(&f.tokenPathLegacy, "token-path-legacy", false, "mount the token at "+webhook.LegacyTokenFilePath+" (Azure Workload Identity up to v1.5.1) for older clients")
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export traces over OTLP/HTTP (default $OTEL_EXPORTER_OTLP_ENDPOINT; off when neither is set)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	fl.StringVar(&f.webhookConfigName, "webhook-config-name", "wif-webhook", "MutatingWebhookConfiguration whose caBundle a managed certificate keeps in step (empty: none)")
	fl.StringVar(&f.tlsCertFile, "tls-cert-file", "", "serving certificate PEM (reloaded on change); with --tls-key-file, instead of a managed certificate")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "serving key PEM (reloaded on change)")
	fl.StringVar(&f.certSecretName, "cert-secret-name", "wif-webhook-cert", "Secret holding the managed CA and serving certificate")
	fl.StringVar(&f.namespace, "namespace", "", "namespace of the certificate Secret (default: the pod's namespace)")
	fl.StringVar(&f.serviceName, "service-name", "wif-webhook", "the webhook's Service, for the managed certificate's DNS names")
	fl.StringSliceVar(&f.tlsHosts, "tls-hosts", nil, "DNS names or IPs of the managed certificate (default <service-name>.<namespace>.svc[.cluster.local])")
	fl.DurationVar(&f.certValidity, "cert-validity", 365*24*time.Hour, "validity of the managed serving certificate (renewed with a third left)")
	fl.DurationVar(&f.certCheckInterval, "cert-check-interval", 10*time.Minute, "how often the managed certificate and caBundle are checked")
	fl.StringVar(&f.proxyImage, "proxy-sidecar-image", webhook.DefaultProxyImage, "image of the managed-identity sidecar (runs wif imds)")
	fl.StringVar(&f.proxyInitImage, "proxy-init-image", webhook.DefaultProxyInitImg, "image of the init container redirecting 169.254.169.254:80 to the sidecar (upstream's proxy-init)")
	fl.StringVar(&f.proxyNative, "proxy-sidecar-native", "auto", "inject the sidecar as a native sidecar: auto (API server ≥ 1.29), true or false")
	fl.StringVar(&f.readyFile, "ready-file", "", "write the webhook's URL to this file once ready")
	fl.StringVar(&f.tlsMinVersion, "tls-min-version", "1.3", "lowest TLS version served: 1.2 or 1.3")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func (f *webhookFlags) validate() error {
	var errs []error
	if f.tenantID == "" {
		errs = append(errs, errors.New("--tenant-id is required: the tenant injected as AZURE_TENANT_ID when a service account names none"))
	}
	if (f.tlsCertFile == "") != (f.tlsKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together: give both, or neither for a managed certificate"))
	}
	if f.tlsCertFile == "" && f.certSecretName == "" {
		errs = append(errs, errors.New("a managed certificate needs --cert-secret-name"))
	}
	switch f.proxyNative {
	case "auto", "true", "false":
	default:
		errs = append(errs, fmt.Errorf("--proxy-sidecar-native %q: expected auto, true or false", f.proxyNative))
	}
	if _, ok := tlsVersions[f.tlsMinVersion]; !ok {
		errs = append(errs, fmt.Errorf("--tls-min-version %q: expected 1.2 or 1.3", f.tlsMinVersion))
	}
	if f.certValidity < time.Hour {
		errs = append(errs, fmt.Errorf("--cert-validity %s is too short: at least 1h", f.certValidity))
	}
	return errors.Join(errs...)
}

// webhookLogger returns a JSON logger on w at level.
func webhookLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// kubeConfig loads path, or the in-cluster configuration when path is empty.
func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster kubernetes configuration (give --kubeconfig outside a cluster): %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return c, nil
}

// inClusterNamespace is the pod's namespace from its service account mount,
// or "default".
func inClusterNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return "default"
	}
	return strings.TrimSpace(string(b))
}
