// Package devenv assembles `wif dev`: on one machine, in one process,
// everything a workload needs to authenticate as a managed identity with no
// cloud and no cluster — a Kubernetes-style issuer, the token service, the
// managed-identity endpoint, a small demo provider API (validating tokens
// with tokenauth) behind the gateway (running an APIM policy), a token file
// kept fresh like the kubelet keeps a projected token, and an env file with
// the variables the Azure SDKs read.
//
// State lives in a directory (default ./.wif): the directory database
// (wif.db), the local CA (ca.pem, ca-key.pem), the issuer key, the
// key-encryption key of the signing keys (kek), the ports in use (dev.json),
// the token file, the gateway's config and policy, and the env file. A
// restart on the same directory keeps all of it, so identity ids, signing
// keys and issuer URLs stay the same and tokens issued before still verify.
//
//	d, err := devenv.Start(ctx, devenv.Config{StateDir: ".wif", RandomPorts: true, OpenStore: ..., NewMemoryStore: ...})
//	fmt.Print(d.Env().Banner(d.ReadyIn, "wif"))
//	err = d.Wait() // until ctx ends
package devenv

import (
	"go.opentelemetry.io/otel/trace"

	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/issuer"
	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/stsserver"
	"github.com/wif-project/wif/internal/tlsutil"
)

// Files in the state directory.
const (
	EnvFile      = "env"
	TokenFile    = "token"
	CAFile       = "ca.pem"
	CABundleFile = "ca-bundle.pem"
	DBFile       = "wif.db"
	PortsFile    = "dev.json"
	KEKFile      = "kek"
)

// The seeded directory: one tenant, the managed identity a workload runs
// as, and the resource application it may call.
const (
	TenantDisplayName   = "wif dev"
	IdentityName        = "demo"
	ResourceGroup       = "wif-dev"
	Namespace           = "default"
	ServiceAccount      = "demo"
	CredentialName      = "wif-dev-issuer"
	ResourceURI         = "api://provider-api"
	ResourceDisplayName = "provider-api"
	ResourceRole        = "Data.Read"
)

// Default ports (without RandomPorts): the token service where `wif serve`
// listens, the issuer where a local kube-apiserver would.
var DefaultPorts = Ports{TokenService: 8443, Issuer: 6443, DemoAPI: 8444, IMDS: 8445, Gateway: 8446}

// Ports are the TCP ports of the listeners.
type Ports struct {
	TokenService int `json:"tokenService"`
	Issuer       int `json:"issuer"`
	DemoAPI      int `json:"demoApi"`
	IMDS         int `json:"imds"`
	Gateway      int `json:"gateway"`
}

// Config configures the dev environment.
type Config struct {
	// StateDir holds the state (required). Created 0700 if absent.
	StateDir string
	// InMemory keeps the directory and the token service's keys in memory
	// (nothing in wif.db); the CA, the issuer key, the token file and the env
	// file still go to StateDir.
	InMemory bool
	// RandomPorts picks free ports on the first start and records them in
	// dev.json; later starts reuse them while they are free, so URLs (and the
	// issuer named by the federated credential) stay the same.
	RandomPorts bool
	// Ports overrides DefaultPorts (zero fields keep the default).
	Ports Ports
	// TokenFileLifetime is the lifetime of the federated tokens written to
	// the token file (default 1 h; replaced at 80 %).
	TokenFileLifetime time.Duration
	// SystemRoots are PEM files of system root CAs to copy into the
	// SSL_CERT_FILE bundle; the first readable one is used.
	SystemRoots []string
	// OpenStore opens the persistent store at a URL such as
	// "sqlite:/path/wif.db" (required unless InMemory).
	OpenStore func(ctx context.Context, url string) (store.Store, error)
	// NewMemoryStore makes an in-memory store (required with InMemory).
	NewMemoryStore func() store.Store
	// Logger receives the parts' logs (default discard).
	Logger *slog.Logger
	// TracerProvider, when set, traces the token service and the gateway.
	TracerProvider trace.TracerProvider
}

// Env is what a running dev environment offers a workload.
type Env struct {
	StateDir      string
	AuthorityHost string // with trailing '/'
	TenantID      string
	ClientID      string // the managed identity's
	PrincipalID   string
	ResourceAppID string
	TokenFile     string
	CAFile        string // the dev CA alone
	CABundle      string // system roots + the dev CA
	IssuerURL     string
	DemoAPIURL    string
	// IdentityEndpoint and IdentityHeader are the App Service managed-
	// identity protocol's endpoint and secret (empty when not running).
	IdentityEndpoint string
	IdentityHeader   string
	// GatewayURL is the demo API through the gateway (empty until the
	// gateway is part of wif dev).
	GatewayURL string
}

// Vars returns the environment variables a workload needs, in a stable
// order.
func (e Env) Vars() [][2]string {
	v := [][2]string{
		{"AZURE_AUTHORITY_HOST", e.AuthorityHost},
		{"AZURE_TENANT_ID", e.TenantID},
		{"AZURE_CLIENT_ID", e.ClientID},
		{"AZURE_FEDERATED_TOKEN_FILE", e.TokenFile},
		{"SSL_CERT_FILE", e.CABundle},
		// Python's requests (so azure-identity for Python, MSAL Python and
		// the Azure CLI) ignores SSL_CERT_FILE and reads this.
		{"REQUESTS_CA_BUNDLE", e.CABundle},
		{"NODE_EXTRA_CA_CERTS", e.CAFile},
	}
	if e.IdentityEndpoint != "" {
		// Both of App Service's pairs, as App Service sets them: the
		// 2019-08-01 one and the 2017-09-01 one az and msrestazure read.
		v = append(v, [2]string{"IDENTITY_ENDPOINT", e.IdentityEndpoint}, [2]string{"IDENTITY_HEADER", e.IdentityHeader},
			[2]string{"MSI_ENDPOINT", e.IdentityEndpoint}, [2]string{"MSI_SECRET", e.IdentityHeader})
	}
	if e.GatewayURL != "" {
		v = append(v, [2]string{"WIF_GATEWAY_URL", e.GatewayURL})
	}
	v = append(v, [2]string{"WIF_DEMO_API_URL", e.DemoAPIURL})
	// The admin CLI (wif identity ..., wif apply) against this token
	// service, unauthenticated from loopback.
	v = append(v, [2]string{"WIF_SERVER", strings.TrimSuffix(e.AuthorityHost, "/")},
		[2]string{"WIF_TENANT", e.TenantID}, [2]string{"WIF_CA_FILE", e.CAFile},
		// AZURE_CLIENT_ID above is the demo workload's, not an admin's.
		[2]string{"WIF_LOGIN", "none"})
	return v
}

// EnvFileContent renders the env file: a comment and one export line per
// variable, values single-quoted for POSIX shells.
func (e Env) EnvFileContent() []byte {
	var b strings.Builder
	b.WriteString("# wif dev: the environment of a workload running as managed identity " + IdentityName + ".\n")
	b.WriteString("# Load it with:  . " + filepath.Join(e.StateDir, EnvFile) + "\n")
	for _, kv := range e.Vars() {
		b.WriteString("export " + kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	return []byte(b.String())
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Dev is a running dev environment.
type Dev struct {
	env    Env
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	closer []func() error
	// ReadyIn is how long Start took.
	ReadyIn time.Duration
}

// Env returns what the environment offers a workload.
func (d *Dev) Env() Env { return d.env }

func (d *Dev) fail(err error) {
	if err == nil {
		return
	}
	d.errMu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.errMu.Unlock()
	d.cancel()
}

func (d *Dev) goRun(name string, f func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := f(); err != nil {
			d.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// Wait blocks until the environment stops (its context ended, or a part
// failed), releases everything and returns the first failure.
func (d *Dev) Wait() error {
	d.wg.Wait()
	for i := len(d.closer) - 1; i >= 0; i-- {
		if err := d.closer[i](); err != nil {
			d.fail(err)
		}
	}
	d.closer = nil
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

// Stop stops the environment and waits for it.
func (d *Dev) Stop() error {
	d.cancel()
	return d.Wait()
}

// Start starts everything, seeds the directory, writes the token file and
// finally the env file (its appearance means ready). The environment runs
// until ctx ends or Stop is called.
func Start(ctx context.Context, cfg Config) (_ *Dev, err error) {
	began := time.Now()
	if cfg.StateDir == "" {
		return nil, errors.New("devenv: a state directory is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	// Another wif dev on this directory owns its env file, token file and
	// ports: touch nothing before holding the lock.
	unlock, err := lockStateDir(dir, began)
	if err != nil {
		return nil, err
	}
	// The env file's presence means "ready": remove a stale one first.
	if err := os.Remove(filepath.Join(dir, EnvFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = unlock()
		return nil, fmt.Errorf("remove stale env file: %w", err)
	}
	lifetime := cfg.TokenFileLifetime
	if lifetime == 0 {
		lifetime = time.Hour
	}

	// runCtx ends when the environment is asked to stop; serveCtx, which the
	// parts run under, ends right after the in-process clients have let go
	// of their connections (see transport below).
	runCtx, cancel := context.WithCancel(ctx)
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	// One transport for every in-process client (the token service fetching
	// issuer keys, the managed-identity endpoint, the gateway): on stop its
	// idle connections are closed before the servers shut down, so no
	// server waits out HTTP/2's one-second GOAWAY grace for them.
	transport := &http.Transport{
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	go func() {
		<-runCtx.Done()
		transport.CloseIdleConnections()
		stopServing()
	}()
	d := &Dev{cancel: cancel}
	d.closer = append(d.closer, unlock)
	defer func() {
		if err != nil {
			cancel()
			_ = d.Wait()
		}
	}()

	// Listeners first: their addresses make the URLs.
	lns, err := listen(dir, cfg)
	if err != nil {
		return nil, err
	}
	for _, ln := range lns.all() {
		d.closer = append(d.closer, ignoreClosed(ln.Close))
	}
	urlOf := func(ln net.Listener, scheme string) string { return scheme + "://" + ln.Addr().String() }
	stsURL := urlOf(lns.sts, "https")
	issuerURL := urlOf(lns.issuer, "https")
	apiURL := urlOf(lns.api, "https")

	// The issuer's RSA key takes a while to generate on the first start:
	// make it while the rest starts.
	type issuerResult struct {
		iss *issuer.Issuer
		err error
	}
	issc := make(chan issuerResult, 1)
	go func() {
		iss, err := issuer.New(issuer.Options{URL: issuerURL, StateDir: dir})
		issc <- issuerResult{iss, err}
	}()
	issReceived := false
	defer func() {
		if !issReceived {
			<-issc // never leave the goroutine writing the key behind
		}
	}()

	ca, err := tlsutil.LoadOrCreateCA(dir, "wif dev local CA")
	if err != nil {
		return nil, err
	}
	serving, err := ca.Issue([]string{"127.0.0.1", "::1", "localhost"}, 90*24*time.Hour)
	if err != nil {
		return nil, err
	}
	tlsConf := tlsutil.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil })
	bundle := filepath.Join(dir, CABundleFile)
	if err := writeBundle(bundle, ca.CertPEM, cfg.SystemRoots); err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	roots.AddCert(ca.Cert)
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	httpClient := &http.Client{Timeout: 30 * time.Second, Transport: transport}

	var st store.Store
	if cfg.InMemory {
		if cfg.NewMemoryStore == nil {
			return nil, errors.New("devenv: no in-memory store")
		}
		st = cfg.NewMemoryStore()
	} else {
		if cfg.OpenStore == nil {
			return nil, errors.New("devenv: no store opener")
		}
		st, err = cfg.OpenStore(runCtx, "sqlite:"+filepath.Join(dir, DBFile))
		if err != nil {
			return nil, fmt.Errorf("open the state database: %w", err)
		}
	}
	d.closer = append(d.closer, st.Close)

	seed, err := Seed(runCtx, st, issuerURL)
	if err != nil {
		return nil, err
	}

	kek, err := loadOrCreateKEK(filepath.Join(dir, KEKFile))
	if err != nil {
		return nil, err
	}
	tokenSvc, err := stsserver.New(runCtx, stsserver.Config{
		Store: st, Listener: lns.sts, TLS: tlsConf.Clone(), PublicURL: stsURL, KEK: kek,
		// wif dev's issuer is on loopback.
		IssuerHTTPClient: httpClient, AllowPrivateIssuers: true, Logger: logger.With("part", "sts"), TracerProvider: cfg.TracerProvider,
		// On a laptop the admin API (wif identity ..., wif apply) needs no
		// token from loopback; the dev tenant administers the directory.
		AdminAllowLoopback: true, AdminOperatorTenant: seed.TenantID,
	})
	if err != nil {
		return nil, fmt.Errorf("token service: %w", err)
	}
	d.goRun("token service", func() error { return tokenSvc.Run(serveCtx) })
	serve := func(name string, ln net.Listener, h http.Handler, tc *tls.Config) {
		mux := http.NewServeMux()
		var probes httpx.Probes
		probes.Mount(mux)
		mux.Handle("/", h)
		// Each server gets its own copy: net/http's HTTP/2 setup writes to
		// the TLS config it is given.
		s := &httpx.Server{Handler: mux, TLSConfig: tc.Clone(), Logger: logger.With("part", name), ShutdownTimeout: 2 * time.Second}
		d.goRun(name, func() error { return s.Serve(serveCtx, ln) })
	}
	ir := <-issc
	issReceived = true
	if ir.err != nil {
		return nil, ir.err
	}
	iss := ir.iss
	serve("issuer", lns.issuer, iss.Handler(), tlsConf)

	api, err := NewDemoAPI(DemoAPIConfig{
		TenantID: seed.TenantID, AuthorityHost: stsURL, ResourceAppID: seed.ResourceAppID,
		JWKS: tokenSvc.Keys.JWKS,
	})
	if err != nil {
		return nil, err
	}
	serve("demo API", lns.api, api, tlsConf)

	tokenPath := filepath.Join(dir, TokenFile)
	writer := &issuer.Writer{
		Issuer:  iss,
		Request: issuer.TokenRequest{Namespace: Namespace, ServiceAccount: ServiceAccount, Lifetime: lifetime},
		Path:    tokenPath,
		Logger:  logger.With("part", "token-file"),
	}
	if _, err := writer.WriteOnce(); err != nil {
		return nil, err
	}
	d.goRun("token file", func() error {
		// The first token was just written; Run writes another at once and
		// then keeps it fresh.
		return writer.Run(serveCtx)
	})

	env := Env{
		StateDir:      dir,
		AuthorityHost: stsURL + "/",
		TenantID:      seed.TenantID,
		ClientID:      seed.ClientID,
		PrincipalID:   seed.PrincipalID,
		ResourceAppID: seed.ResourceAppID,
		TokenFile:     tokenPath,
		CAFile:        filepath.Join(dir, CAFile),
		CABundle:      bundle,
		IssuerURL:     issuerURL,
		DemoAPIURL:    apiURL + DemoAPIPath,
	}
	if lns.imds != nil {
		endpoint, header, err := startIMDS(serveCtx, d, lns.imds, env, httpClient, logger)
		if err != nil {
			return nil, err
		}
		env.IdentityEndpoint, env.IdentityHeader = endpoint, header
	}
	gw, err := newGateway(dir, stsURL, apiURL, seed, httpClient, logger.With("part", "gateway"), cfg.TracerProvider)
	if err != nil {
		return nil, err
	}
	d.closer = append(d.closer, func() error { gw.Close(); return nil })
	gwServer := &httpx.Server{Handler: gw, TLSConfig: tlsConf.Clone(), Logger: logger.With("part", "gateway"), ShutdownTimeout: 2 * time.Second}
	d.goRun("gateway", func() error { return gwServer.Serve(serveCtx, lns.gateway) })
	warmGateway(runCtx, gw, logger)
	env.GatewayURL = urlOf(lns.gateway, "https") + DemoAPIPath

	d.env = env
	if err := tlsutil.WriteFileAtomic(filepath.Join(dir, EnvFile), env.EnvFileContent(), 0o600); err != nil {
		return nil, err
	}
	d.ReadyIn = time.Since(began)
	return d, nil
}

// loadOrCreateKEK reads the key-encryption key at path, creating one (32
// random bytes as hex, mode 0600) first if there is none.
func loadOrCreateKEK(path string) ([]byte, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, jose.KEKSize)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		if err := tlsutil.WriteFileAtomic(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return jose.LoadKEK(path, nil)
}

func ignoreClosed(f func() error) func() error {
	return func() error {
		if err := f(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}

// writeBundle writes the SSL_CERT_FILE bundle: the first readable system
// roots file, then the dev CA.
func writeBundle(path string, caPEM []byte, systemRoots []string) error {
	var out []byte
	for _, f := range systemRoots {
		if f == "" || f == path {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
			out = append(out, b...)
			if out[len(out)-1] != '\n' {
				out = append(out, '\n')
			}
			break
		}
	}
	out = append(out, "# wif dev local CA\n"...)
	out = append(out, caPEM...)
	return tlsutil.WriteFileAtomic(path, out, 0o644)
}

type listeners struct {
	sts, issuer, api, imds, gateway net.Listener
}

func (l listeners) all() []net.Listener {
	var out []net.Listener
	for _, ln := range []net.Listener{l.sts, l.issuer, l.api, l.imds, l.gateway} {
		if ln != nil {
			out = append(out, ln)
		}
	}
	return out
}

// listen opens the listeners: fixed ports, or with RandomPorts the ports
// recorded in dev.json when still free, else new ones (then recorded).
func listen(dir string, cfg Config) (listeners, error) {
	want := DefaultPorts
	if cfg.Ports.TokenService != 0 {
		want.TokenService = cfg.Ports.TokenService
	}
	if cfg.Ports.Issuer != 0 {
		want.Issuer = cfg.Ports.Issuer
	}
	if cfg.Ports.DemoAPI != 0 {
		want.DemoAPI = cfg.Ports.DemoAPI
	}
	if cfg.Ports.IMDS != 0 {
		want.IMDS = cfg.Ports.IMDS
	}
	if cfg.Ports.Gateway != 0 {
		want.Gateway = cfg.Ports.Gateway
	}
	portsPath := filepath.Join(dir, PortsFile)
	if cfg.RandomPorts {
		want = Ports{}
		if b, err := os.ReadFile(portsPath); err == nil {
			_ = json.Unmarshal(b, &want) // a damaged file only costs new ports
		}
	}
	var l listeners
	var errs []error
	open := func(name string, port int) net.Listener {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil && cfg.RandomPorts && port != 0 {
			ln, err = net.Listen("tcp", "127.0.0.1:0") // the recorded port is taken: pick another
		}
		if err != nil {
			hint := ""
			if !cfg.RandomPorts {
				hint = " (another wif dev running? use --random-ports to pick free ports)"
			}
			errs = append(errs, fmt.Errorf("%s: listen on %s: %w%s", name, addr, err, hint))
			return nil
		}
		return ln
	}
	l.sts = open("token service", want.TokenService)
	l.issuer = open("issuer", want.Issuer)
	l.api = open("demo API", want.DemoAPI)
	l.imds = open("managed-identity endpoint", want.IMDS)
	l.gateway = open("gateway", want.Gateway)
	if err := errors.Join(errs...); err != nil {
		for _, ln := range l.all() {
			ln.Close()
		}
		return listeners{}, err
	}
	if cfg.RandomPorts {
		got := Ports{TokenService: port(l.sts), Issuer: port(l.issuer), DemoAPI: port(l.api), IMDS: port(l.imds), Gateway: port(l.gateway)}
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := tlsutil.WriteFileAtomic(portsPath, append(b, '\n'), 0o600); err != nil {
			for _, ln := range l.all() {
				ln.Close()
			}
			return listeners{}, err
		}
	}
	return l, nil
}

func port(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	return ln.Addr().(*net.TCPAddr).Port
}

// Banner renders the short text `wif dev` prints on stderr: what runs where
// and the lines to paste, with wifCmd as the command that runs wif ("wif",
// "go run ./cmd/wif", a path).
func (e Env) Banner(readyIn time.Duration, wifCmd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wif dev ready in %s (state in %s)\n", readyIn.Round(time.Millisecond), e.StateDir)
	fmt.Fprintf(&b, "  token service   %s   tenant %s\n", e.AuthorityHost, e.TenantID)
	fmt.Fprintf(&b, "  issuer          %s   (system:serviceaccount:%s:%s)\n", e.IssuerURL, Namespace, ServiceAccount)
	fmt.Fprintf(&b, "  identity        %s   client id %s\n", IdentityName, e.ClientID)
	fmt.Fprintf(&b, "  demo API        %s   (%s, role %s)\n", e.DemoAPIURL, ResourceURI, ResourceRole)
	if e.IdentityEndpoint != "" {
		fmt.Fprintf(&b, "  managed identity endpoint  %s\n", e.IdentityEndpoint)
	}
	if e.GatewayURL != "" {
		fmt.Fprintf(&b, "  gateway         %s   (the demo API behind %s)\n", e.GatewayURL, GatewayPolicyFile)
	}
	fmt.Fprintf(&b, "  token file      %s (kept fresh)\n", e.TokenFile)
	fmt.Fprintf(&b, "Paste into another shell:\n  . %s\n  %s token get --scope %s/.default --decode\n", filepath.Join(e.StateDir, EnvFile), wifCmd, ResourceURI)
	return b.String()
}
