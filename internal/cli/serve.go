package cli

import (
	"github.com/wif-project/wif/internal/directory"
	"io"

	"github.com/wif-project/wif/internal/telemetry"

	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/stores"
	"github.com/wif-project/wif/internal/stsserver"
	"github.com/wif-project/wif/internal/tlsutil"
)

type serveFlags struct {
	issuerAlgs       []string
	allowPrivateIss  bool
	maxCreds         int
	maxApplyBytes    int64
	otlpEndpoint     string
	maxInflight      int
	maxQueueWait     time.Duration
	listen           string
	publicURL        string
	storeURL         string
	tlsCertFile      string
	tlsKeyFile       string
	tlsSelfSigned    bool
	tlsCAOut         string
	directoryFile    string
	tokenLifetime    time.Duration
	kekFile          string
	previousKEKFiles []string
	entraIssuerNames bool
	readyFile        string
	trustCAFiles     []string
	logLevel         string
	auditRetention   time.Duration
	auditSpoolDir    string
	auditEvery       bool
	auditSink        string
	auditSpoolMax    int64
	auditRefuseFull  bool
	maxStaleness     time.Duration
	keyRotation      time.Duration
	keyPrePublish    time.Duration
	bootstrapIssuer  string
	bootstrapSubject string
	bootstrapTenant  string
	operatorTenant   string
}

func newServeCommand(streams Streams) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the token service (Entra-compatible federated credential exchange)",
		Long: `Run the token service: the Entra-compatible token endpoint where workloads
exchange their platform token (a Kubernetes service-account token, a CI job
token) for an access token, with the tenant discovery documents and keys.

Every flag can also be set as an environment variable WIF_<FLAG>, e.g.
WIF_STORE=postgres://... or WIF_PUBLIC_URL=https://wif.example.com.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), streams, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8443", "address to listen on (host:port; port 0 picks a free one)")
	fl.StringVar(&f.publicURL, "public-url", "", "the URL clients use as authority host, e.g. https://wif.example.com (default https://<listen address>)")
	fl.StringVar(&f.storeURL, "store", "sqlite:wif.db", "where state lives: sqlite:PATH, postgres://... or memory:")
	fl.StringVar(&f.tlsCertFile, "tls-cert-file", "", "PEM certificate (chain) for HTTPS; reloaded when it changes")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "PEM private key for --tls-cert-file")
	fl.BoolVar(&f.tlsSelfSigned, "tls-self-signed", false, "serve with a certificate from a CA made at start (see --tls-ca-out)")
	fl.StringVar(&f.tlsCAOut, "tls-ca-out", "", "with --tls-self-signed: write the CA certificate (PEM) here for clients to trust")
	fl.StringVar(&f.directoryFile, "directory", "", "a directory YAML file applied (idempotently) at start")
	fl.DurationVar(&f.tokenLifetime, "token-lifetime", time.Hour, "lifetime of issued access tokens (10m to 24h)")
	fl.StringVar(&f.kekFile, "key-encryption-key-file", "", "file holding a 32-byte key (raw or base64) that encrypts signing keys at rest")
	fl.StringSliceVar(&f.previousKEKFiles, "previous-key-encryption-key-file", nil, "while replacing the key-encryption key: a previous one, still accepted to open keys (repeatable; see wif keys rewrap)")
	fl.BoolVar(&f.entraIssuerNames, "entra-issuer-names", false, "issue v1 tokens with Entra's issuer https://sts.windows.net/{tid}/ (so production APIM policies run unedited)")
	fl.StringVar(&f.readyFile, "ready-file", "", "write the public URL to this file once listening")
	fl.StringSliceVar(&f.trustCAFiles, "issuer-ca-file", nil, "extra PEM CA bundle trusted when fetching external issuers' keys (repeatable)")
	fl.DurationVar(&f.auditRetention, "audit-retention", 30*24*time.Hour, "how long audit records of exchanges are kept (negative: forever)")
	fl.BoolVar(&f.auditEvery, "audit-every-exchange", false, "write a full audit record for every successful exchange (default: refusals and the first success of each client, credential, subject and audience per hour in full, repeats counted per minute in one record)")
	fl.StringVar(&f.auditSink, "audit-sink", "", "also stream every audit record whole: as JSON lines to stdout or a file path (appended; for log shippers), or as OTLP log records to an OTLP/HTTP logs endpoint (https://collector:4318/v1/logs; trusts the system roots and SSL_CERT_FILE)")
	fl.StringVar(&f.auditSpoolDir, "audit-spool-dir", "", "where audit records wait (fsync'd) while the store cannot take them, replayed when it can (default: <sqlite file>.audit-spool, or wif-audit-spool in the temporary directory; give a persistent volume in a pod)")
	fl.Int64Var(&f.auditSpoolMax, "audit-spool-max-bytes", 256<<20, "bound on the audit spool; when reached, records are dropped and counted, or exchanges refused with --audit-refuse-when-full")
	fl.BoolVar(&f.auditRefuseFull, "audit-refuse-when-full", false, "refuse exchanges (503) while the store is down and the audit spool full, rather than issue tokens that are not audited")
	fl.DurationVar(&f.keyRotation, "key-rotation-period", 0, "how long each signing key signs (default 30 days; drills and tests)")
	fl.DurationVar(&f.keyPrePublish, "key-pre-publish", 0, "how long a new signing key is published before it signs (default 48 h; drills and tests)")
	_ = fl.MarkHidden("key-rotation-period")
	_ = fl.MarkHidden("key-pre-publish")
	fl.DurationVar(&f.maxStaleness, "max-directory-staleness", time.Hour, "how long to serve exchanges from a directory that cannot be refreshed from the store (store unreachable) before refusing them with 503; 0: no bound")
	fl.StringVar(&f.bootstrapIssuer, "bootstrap-admin-issuer", "", "create (idempotently) an admin identity trusting this issuer, so a pipeline can manage the directory with its own federated identity")
	fl.StringVar(&f.bootstrapSubject, "bootstrap-admin-subject", "", "with --bootstrap-admin-issuer: the subject the admin identity trusts")
	fl.StringVar(&f.bootstrapTenant, "bootstrap-admin-tenant", "", "with --bootstrap-admin-issuer: the tenant id of the admin identity, created if it does not exist, and the operator tenant unless --operator-tenant names another (default: the store's only tenant; required when the store holds no tenant or several)")
	fl.StringVar(&f.operatorTenant, "operator-tenant", "", "the tenant whose directory admins administer every tenant (default: the bootstrap admin's tenant)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.Int64Var(&f.maxApplyBytes, "max-apply-bytes", apply.DefaultMaxApplyBytes, "the largest directory document the admin API takes (wif apply sends one per call; larger directories: apply them split by tenant)")
	fl.IntVar(&f.maxCreds, "max-credentials-per-identity", directory.MaxCredentialsPerParent, "the most federated credentials one identity or application may hold (Entra: 20)")
	fl.StringArrayVar(&f.issuerAlgs, "issuer-algorithms", nil, "ISSUER=ALG[,ALG...]: the signature algorithms an issuer's assertions may use instead of RS256 alone, e.g. https://spire.example.org=ES256 for SPIFFE/SPIRE JWT-SVIDs (repeatable; RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)")
	fl.BoolVar(&f.allowPrivateIss, "allow-private-issuers", false, "let issuer fetches reach loopback, link-local and private addresses (refused by default, so a credential cannot point the token service at 169.254.169.254 or an internal service); for single-tenant installations whose issuers are on the internal network")
	fl.IntVar(&f.maxInflight, "max-inflight-exchanges", 0, "exchanges processed at once; more wait their turn first come, first served (default 4 × GOMAXPROCS; -1: no bound)")
	fl.DurationVar(&f.maxQueueWait, "max-queue-wait", 100*time.Millisecond, "a request whose expected wait for a turn is longer is answered at once with 503 temporarily_unavailable and Retry-After (overload)")
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export traces over OTLP/HTTP to this collector (http://collector:4318; default $OTEL_EXPORTER_OTLP_ENDPOINT; off when neither is set)")
	return cmd
}

// newLogger returns a JSON logger on w at level.
func newLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func (f *serveFlags) validate() error {
	var errs []error
	certGiven := f.tlsCertFile != "" || f.tlsKeyFile != ""
	switch {
	case certGiven && f.tlsSelfSigned:
		errs = append(errs, errors.New("--tls-self-signed and --tls-cert-file/--tls-key-file exclude each other: give one"))
	case certGiven && (f.tlsCertFile == "" || f.tlsKeyFile == ""):
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together: give both"))
	case !certGiven && !f.tlsSelfSigned:
		errs = append(errs, errors.New("HTTPS is required (Azure clients refuse an http authority): give --tls-cert-file and --tls-key-file, or --tls-self-signed"))
	}
	if (f.bootstrapIssuer == "") != (f.bootstrapSubject == "") {
		errs = append(errs, errors.New("--bootstrap-admin-issuer and --bootstrap-admin-subject go together: give both"))
	}
	if f.tlsCAOut != "" && !f.tlsSelfSigned {
		errs = append(errs, errors.New("--tls-ca-out needs --tls-self-signed"))
	}
	if f.tokenLifetime < 10*time.Minute || f.tokenLifetime > 24*time.Hour {
		errs = append(errs, fmt.Errorf("--token-lifetime %s must be between 10m and 24h", f.tokenLifetime))
	}
	return errors.Join(errs...)
}

func runServe(ctx context.Context, streams Streams, f serveFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	logger, err := newLogger(streams.ErrOut, f.logLevel)
	if err != nil {
		return err
	}
	tp, err := telemetry.New(ctx, telemetry.Options{Endpoint: f.otlpEndpoint, ServiceName: "wif-serve", LookupEnv: lookupEnvFrom(ctx)})
	if err != nil {
		return err
	}
	defer flushTraces(tp, logger)
	logger = slog.New(telemetry.LogHandler(logger.Handler()))
	if f.maxCreds < 1 || f.maxCreds > 1000 {
		return fmt.Errorf("--max-credentials-per-identity must be from 1 to 1000, not %d", f.maxCreds)
	}
	issuerAlgs := map[string][]string{}
	for _, v := range f.issuerAlgs {
		iss, algs, ok := strings.Cut(v, "=")
		if !ok || !strings.HasPrefix(iss, "https://") || algs == "" {
			return fmt.Errorf("--issuer-algorithms %q: want ISSUER=ALG[,ALG...] with an https issuer, e.g. https://spire.example.org=ES256", v)
		}
		issuerAlgs[iss] = append(issuerAlgs[iss], strings.Split(algs, ",")...)
	}
	var sink io.Writer
	var otlpURL string
	switch {
	case f.auditSink == "":
	case f.auditSink == "stdout", f.auditSink == "-":
		sink = os.Stdout
	case strings.HasPrefix(f.auditSink, "https://"), strings.HasPrefix(f.auditSink, "http://"):
		u, err := url.Parse(f.auditSink)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--audit-sink %q: not a URL of an OTLP/HTTP logs endpoint (https://HOST:4318/v1/logs)", f.auditSink)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/logs" // the OTLP/HTTP default
		}
		otlpURL = u.String()
	default:
		fh, err := os.OpenFile(f.auditSink, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--audit-sink: %w", err)
		}
		defer fh.Close()
		sink = fh
	}
	st, err := stores.OpenWith(ctx, f.storeURL, stores.Options{Logger: logger, MaxCredentialsPerParent: f.maxCreds})
	if err != nil {
		return err
	}
	defer st.Close()
	if f.directoryFile != "" {
		if err := applyDirectoryFile(ctx, st, f.directoryFile, logger); err != nil {
			return err
		}
	}
	operatorTenant := f.operatorTenant
	if f.bootstrapIssuer != "" {
		mi, err := admin.Bootstrap(ctx, st, f.bootstrapTenant, f.bootstrapIssuer, f.bootstrapSubject)
		if errors.Is(err, admin.ErrBootstrapTenant) {
			return fmt.Errorf("%w: give --bootstrap-admin-tenant with the tenant id (a GUID; it is created if it does not exist)", err)
		}
		if err != nil {
			return err
		}
		if operatorTenant == "" {
			operatorTenant = mi.TenantID
		}
		logger.Info("bootstrap admin identity ready: use it as AZURE_CLIENT_ID for the admin CLI",
			"tenant", mi.TenantID, "client_id", mi.ClientID, "issuer", f.bootstrapIssuer, "subject", f.bootstrapSubject)
	}
	var kek []byte
	if f.kekFile != "" {
		if kek, err = jose.LoadKEK(f.kekFile, logger); err != nil {
			return err
		}
	}
	var previousKEKs [][]byte
	for _, p := range f.previousKEKFiles {
		k, err := jose.LoadKEK(p, logger)
		if err != nil {
			return err
		}
		previousKEKs = append(previousKEKs, k)
	}
	ln, err := httpx.Listen(f.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	publicURL := strings.TrimRight(f.publicURL, "/")
	if publicURL == "" {
		publicURL = "https://" + ln.Addr().String()
	}
	tlsConfig, err := f.tlsConfig(publicURL, ln.Addr())
	if err != nil {
		return err
	}
	issuerClient, err := issuerHTTPClient(f.trustCAFiles)
	if err != nil {
		return err
	}
	srv, err := stsserver.New(ctx, stsserver.Config{
		Store: st, Listener: ln, TLS: tlsConfig, PublicURL: publicURL, KEK: kek, PreviousKEKs: previousKEKs,
		TokenLifetime: f.tokenLifetime, EntraIssuerNames: f.entraIssuerNames, AuditRetention: f.auditRetention,
		AuditSpoolDir: spoolDir(f), AuditSpoolMaxBytes: f.auditSpoolMax, AuditRefuseWhenFull: f.auditRefuseFull,
		MaxDirectoryStaleness: f.maxStaleness, KeyRotationPeriod: f.keyRotation, KeyPrePublish: f.keyPrePublish,
		IssuerHTTPClient: issuerClient, Logger: logger, AdminOperatorTenant: operatorTenant, TracerProvider: tp,
		AuditEveryExchange: f.auditEvery, AuditSink: sink, AuditOTLPEndpoint: otlpURL,
		MaxApplyBytes: f.maxApplyBytes, MaxInflightExchanges: f.maxInflight, MaxQueueWait: f.maxQueueWait, AllowPrivateIssuers: f.allowPrivateIss, IssuerAlgorithms: issuerAlgs,
	})
	if err != nil {
		return err
	}
	logger.Info("token service listening", "url", publicURL, "address", ln.Addr().String(), "store", storeKind(f.storeURL))
	if f.readyFile != "" {
		if err := tlsutil.WriteFileAtomic(f.readyFile, []byte(publicURL+"\n"), 0o644); err != nil {
			return err
		}
	}
	return srv.Run(ctx)
}

// flushTraces sends the spans still buffered, bounded to 5 s.
func flushTraces(tp *telemetry.Provider, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		logger.Warn("flushing traces", "err", err)
	}
}

// storeKind names the store backend without its credentials.
func storeKind(u string) string {
	kind, _, _ := strings.Cut(u, ":")
	return kind
}

func (f *serveFlags) tlsConfig(publicURL string, addr net.Addr) (*tls.Config, error) {
	if !f.tlsSelfSigned {
		fc, err := tlsutil.NewFileCertificate(f.tlsCertFile, f.tlsKeyFile)
		if err != nil {
			return nil, err
		}
		return tlsutil.ServerConfig(fc.GetCertificate), nil
	}
	ca, err := tlsutil.NewCA("wif serve self-signed CA", 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		hosts = append(hosts, host)
	}
	if u := strings.TrimPrefix(publicURL, "https://"); u != "" {
		if h, _, err := net.SplitHostPort(u); err == nil {
			hosts = append(hosts, h)
		} else {
			hosts = append(hosts, u)
		}
	}
	cert, err := ca.Issue(hosts, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if f.tlsCAOut != "" {
		if err := os.MkdirAll(filepath.Dir(f.tlsCAOut), 0o755); err != nil {
			return nil, fmt.Errorf("--tls-ca-out: %w", err)
		}
		if err := tlsutil.WriteFileAtomic(f.tlsCAOut, ca.CertPEM, 0o644); err != nil {
			return nil, fmt.Errorf("--tls-ca-out: %w", err)
		}
	}
	return tlsutil.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }), nil
}

// issuerHTTPClient returns the client that fetches external issuers'
// metadata: system roots plus the given CA files.
func issuerHTTPClient(caFiles []string) (*http.Client, error) {
	if len(caFiles) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--issuer-ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--issuer-ca-file %s: no PEM certificate found", f)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, nil
}

// applyDirectoryFile applies a directory YAML document to st.
func applyDirectoryFile(ctx context.Context, st store.DirectoryStore, path string, logger *slog.Logger) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--directory: %w", err)
	}
	defer fh.Close()
	doc, err := apply.Parse(fh)
	if err != nil {
		return fmt.Errorf("--directory %s: %w", path, err)
	}
	// Replicas starting together apply the same file at once: Converge
	// plans again when another replica's write came first.
	n, err := apply.Converge(ctx, st, doc, apply.Options{})
	if err != nil {
		return fmt.Errorf("--directory %s: %w", path, err)
	}
	logger.Info("directory file applied", "file", path, "changes", n)
	return nil
}

// spoolDir is --audit-spool-dir, or its default: beside a SQLite file, in
// the temporary directory for PostgreSQL (named after the store, so
// replicas on one host keep apart), none for the memory store (it never
// refuses a write).
func spoolDir(f serveFlags) string {
	switch {
	case f.auditSpoolDir != "":
		return f.auditSpoolDir
	case strings.HasPrefix(f.storeURL, "memory:"):
		return ""
	case strings.HasPrefix(f.storeURL, "sqlite:"):
		path, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(f.storeURL, "sqlite:"), "//"), "?")
		return path + ".audit-spool"
	}
	sum := sha256.Sum256([]byte(f.storeURL + "|" + f.listen))
	return filepath.Join(os.TempDir(), "wif-audit-spool-"+hex.EncodeToString(sum[:6]))
}
