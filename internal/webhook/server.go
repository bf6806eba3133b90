package webhook

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/wif-project/wif/internal/telemetry"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/tlsutil"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
)

// ServeOptions configure a running webhook.
type ServeOptions struct {
	// Config is the mutation's configuration. NativeSidecar is overridden by
	// NativeSidecarMode.
	Config Config
	// NativeSidecarMode is "auto" (API server ≥ 1.29), "true" or "false".
	NativeSidecarMode string
	// Client talks to the API server.
	Client kubernetes.Interface
	// Identities resolves wif.io/identity references (nil: refused).
	Identities IdentityResolver
	// Listener serves HTTPS (Path, /healthz, /readyz, /metrics).
	Listener net.Listener
	// CertFile and KeyFile, when set, are served and reloaded on change;
	// otherwise Certs manages the certificate.
	CertFile, KeyFile string
	// Certs is the self-managed certificate (used when CertFile is empty).
	Certs *CertManager
	// TracerProvider, when set, gives each admission review a server span.
	TracerProvider trace.TracerProvider
	// TLSMinVersion is the lowest TLS version served (default TLS 1.3, as
	// upstream's --tls-min-version).
	TLSMinVersion uint16
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry gets the metrics and serves /metrics; nil makes one.
	Registry *prometheus.Registry
	// Ready, if set, is called once /readyz first passes (tests and
	// --ready-file use it).
	Ready func()
}

// NativeSidecarSupported asks the API server's version: native sidecars
// (init containers with restartPolicy Always) are on by default from 1.29.
func NativeSidecarSupported(d discovery.ServerVersionInterface) (bool, error) {
	v, err := d.ServerVersion()
	if err != nil {
		return false, fmt.Errorf("get API server version: %w", err)
	}
	sv, err := utilversion.ParseGeneric(v.GitVersion)
	if err != nil {
		return false, fmt.Errorf("parse API server version %q: %w", v.GitVersion, err)
	}
	return sv.AtLeast(utilversion.MajorMinor(1, 29)), nil
}

// Serve runs the webhook until ctx ends.
func Serve(ctx context.Context, o ServeOptions) error {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Listener == nil || o.Client == nil {
		return errors.New("webhook: a listener and a Kubernetes client are required")
	}
	reg := o.Registry
	if reg == nil {
		reg = httpx.NewRegistry()
	}
	switch o.NativeSidecarMode {
	case "true":
		o.Config.NativeSidecar = true
	case "false":
		o.Config.NativeSidecar = false
	case "", "auto":
		ok, err := NativeSidecarSupported(o.Client.Discovery())
		if err != nil {
			return err
		}
		o.Config.NativeSidecar = ok
	default:
		return fmt.Errorf("--proxy-sidecar-native %q: expected auto, true or false", o.NativeSidecarMode)
	}
	logger.Info("webhook configuration", "nativeSidecar", o.Config.NativeSidecar, "audience", o.Config.Audience,
		"authorityHost", o.Config.AuthorityHost, "legacyTokenPath", o.Config.LegacyTokenPath)

	var probes httpx.Probes
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	switch {
	case o.CertFile != "" || o.KeyFile != "":
		fc, err := tlsutil.NewFileCertificate(o.CertFile, o.KeyFile)
		if err != nil {
			return err
		}
		getCert = fc.GetCertificate
	case o.Certs != nil:
		getCert = o.Certs.GetCertificate
		probes.AddReadiness("certificate", o.Certs.Ready)
		go o.Certs.Run(ctx)
	default:
		return errors.New("webhook: give --tls-cert-file and --tls-key-file, or a certificate secret to manage")
	}

	sas, start := NewServiceAccountInformer(o.Client, 0)
	probes.AddReadiness("serviceaccount-cache", sas.Ready)
	go start(ctx)

	h, err := NewHandler(o.Config, sas, HandlerOptions{Logger: logger, Registerer: reg, Identities: o.Identities})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+Path, h)
	probes.Mount(mux)
	httpx.MountMetrics(mux, reg)

	if o.Ready != nil {
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if o.Certs != nil && o.Certs.Ready(ctx) != nil || sas.Ready(ctx) != nil {
					continue
				}
				o.Ready()
				return
			}
		}()
	}
	tlsConfig := tlsutil.ServerConfig(getCert)
	tlsConfig.MinVersion = tls.VersionTLS13
	if o.TLSMinVersion != 0 {
		tlsConfig.MinVersion = o.TLSMinVersion
	}
	srv := &httpx.Server{Handler: telemetry.Handler(o.TracerProvider, "webhook", mux), TLSConfig: tlsConfig, Logger: logger}
	logger.Info("webhook listening", "addr", o.Listener.Addr().String())
	return srv.Serve(ctx, o.Listener)
}
