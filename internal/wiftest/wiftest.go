// Package wiftest starts a real wif token service on loopback HTTPS for
// tests, with a test external issuer and helpers to create directory
// objects and do real exchanges. Nothing in it is a fake: the service is
// the one `wif serve` runs, over a real TLS listener.
package wiftest

import (
	"go.opentelemetry.io/otel/trace"

	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/stsserver"
	"github.com/wif-project/wif/internal/tlsutil"
)

// Env is a running token service and its surroundings.
type Env struct {
	// URL is the authority host, e.g. https://127.0.0.1:PORT (no trailing
	// '/'); AZURE_AUTHORITY_HOST is URL + "/".
	URL string
	// CAFile is the PEM file of the CA that signed the service's
	// certificate; CAPool holds it.
	CAFile string
	CAPool *x509.CertPool
	// HTTPClient trusts the CA (and the test issuer).
	HTTPClient *http.Client
	Store      store.Store
	Server     *stsserver.Server
	TenantID   string
	// Issuer is an external OIDC issuer the service can fetch keys from.
	Issuer *Issuer

	stop func(testing.TB)
}

// Stop stops the token service now (as a clean shutdown: queued audit
// records are written); the test's cleanup would otherwise.
func (e *Env) Stop(t testing.TB) { e.stop(t) }

// Option changes how Start builds the environment.
type Option func(*options)

type options struct {
	otlpURL          string
	otlpClient       *http.Client
	ca               *tlsutil.CA
	everyExchange    bool
	auditSink        io.Writer
	store            store.Store
	lifetime         time.Duration
	entraIssuerNames bool
	tenantID         string
	logger           *slog.Logger
	spoolDir         string
	spoolMax         int64
	refuseFull       bool
	maxStale         time.Duration
	now              func() time.Time
	tracer           trace.TracerProvider
	maxInflight      int
	maxQueueWait     time.Duration
	refusePrivate    bool
	issuerAlgs       map[string][]string
	issuerClient     *http.Client
}

// WithIssuerAlgorithms lets issuers sign assertions with more than RS256
// (see sts.Config.IssuerAlgorithms).
func WithIssuerAlgorithms(m map[string][]string) Option { return func(o *options) { o.issuerAlgs = m } }

// WithIssuerHTTPClient fetches issuers' keys with c (one trusting another
// httptest server, say) instead of the test issuer's client.
func WithIssuerHTTPClient(c *http.Client) Option { return func(o *options) { o.issuerClient = c } }

// WithPrivateIssuersRefused keeps the token service's default address
// guard (issuer fetches refuse loopback, link-local and private
// addresses); the test issuer itself is then unreachable.
func WithPrivateIssuersRefused() Option { return func(o *options) { o.refusePrivate = true } }

// WithAdmission sets the token endpoint's admission bounds (see
// sts.Config.MaxInflight; -1: none).
func WithAdmission(maxInflight int, maxQueueWait time.Duration) Option {
	return func(o *options) { o.maxInflight, o.maxQueueWait = maxInflight, maxQueueWait }
}

// WithTracerProvider traces the service's requests with tp.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// WithStore uses s instead of a new in-memory store (the caller closes it).
func WithStore(s store.Store) Option { return func(o *options) { o.store = s } }

// WithTokenLifetime sets the access-token lifetime.
func WithTokenLifetime(d time.Duration) Option { return func(o *options) { o.lifetime = d } }

// WithEntraIssuerNames makes v1 tokens carry https://sts.windows.net/{tid}/.
func WithEntraIssuerNames() Option { return func(o *options) { o.entraIssuerNames = true } }

// WithTenantID creates the test tenant with this id.
func WithTenantID(id string) Option { return func(o *options) { o.tenantID = id } }

// WithLogger sends the service's logs to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithAuditSpool gives the service an audit spool in dir (bounded to max
// bytes; 0: the default), as wif serve has.
func WithAuditSpool(dir string, max int64) Option {
	return func(o *options) { o.spoolDir, o.spoolMax = dir, max }
}

// WithAuditEveryExchange writes a full audit record for every exchange
// (no per-minute aggregation of repeated successes).
func WithAuditEveryExchange() Option { return func(o *options) { o.everyExchange = true } }

// WithAuditOTLP streams every audit record to an OTLP/HTTP logs URL with
// client.
func WithAuditOTLP(url string, client *http.Client) Option {
	return func(o *options) { o.otlpURL, o.otlpClient = url, client }
}

// WithAuditSink streams every audit record as a JSON line to w.
func WithAuditSink(w io.Writer) Option { return func(o *options) { o.auditSink = w } }

// WithAuditRefuseWhenFull makes the service refuse exchanges while its
// audit spool is full.
func WithAuditRefuseWhenFull() Option { return func(o *options) { o.refuseFull = true } }

// WithMaxDirectoryStaleness bounds how long the service serves a directory
// it cannot refresh.
func WithMaxDirectoryStaleness(d time.Duration) Option {
	return func(o *options) { o.maxStale = d }
}

// WithClock sets the service's clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithCA serves with a certificate of ca (default: a new CA per Env), for
// clients that trust only the system roots, pointed at ca by
// SSL_CERT_FILE before the process first reads them.
func WithCA(ca *tlsutil.CA) Option { return func(o *options) { o.ca = ca } }

// Start runs a token service until the test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := options{tenantID: directory.NewID()}
	for _, f := range opts {
		f(&o)
	}
	if o.store == nil {
		o.store = memory.New()
		t.Cleanup(func() { o.store.Close() })
	}
	issuer := NewIssuer(t)
	ca := o.ca
	if ca == nil {
		var err error
		if ca, err = tlsutil.NewCA("wif test CA", 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := ca.Issue([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	// The service must trust the test issuer's certificate to fetch its keys.
	issuerClient := issuer.Server.Client()
	if o.issuerClient != nil {
		issuerClient = o.issuerClient
	}
	ctx, cancel := context.WithCancel(context.Background())
	env := &Env{CAFile: caFile, CAPool: ca.Pool(), Store: o.store, Issuer: issuer}
	if _, err := o.store.CreateTenant(ctx, directory.Tenant{ID: o.tenantID, DisplayName: "wif test tenant"}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		cancel()
		t.Fatalf("create tenant: %v", err)
	}
	env.TenantID = directory.CanonicalID(o.tenantID)
	ln, err := httpx.Listen("127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv, err := stsserver.New(ctx, stsserver.Config{
		Store: o.store, Listener: ln, TLS: tlsutil.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }),
		TokenLifetime: o.lifetime, EntraIssuerNames: o.entraIssuerNames, IssuerHTTPClient: issuerClient, AllowPrivateIssuers: !o.refusePrivate, // the test issuer is on loopback
		AuditSpoolDir: o.spoolDir, AuditSpoolMaxBytes: o.spoolMax, AuditRefuseWhenFull: o.refuseFull, MaxDirectoryStaleness: o.maxStale,
		AuditEveryExchange: o.everyExchange, AuditSink: o.auditSink, AuditOTLPEndpoint: o.otlpURL, AuditOTLPClient: o.otlpClient,
		Logger: o.logger, Now: o.now, TracerProvider: o.tracer, MaxInflightExchanges: o.maxInflight, MaxQueueWait: o.maxQueueWait,
		IssuerAlgorithms: o.issuerAlgs,
	})
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("start token service: %v", err)
	}
	env.Server, env.URL = srv, srv.URL
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	env.stop = func(t testing.TB) {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("token service stopped with: %v", err)
			}
		})
	}
	t.Cleanup(func() { env.stop(t) })
	pool := ca.Pool()
	pool.AddCert(issuer.Server.Certificate())
	env.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return env
}

// Changed makes the service reload its directory now (after writes through
// env.Store).
func (e *Env) Changed(t testing.TB) {
	t.Helper()
	if err := e.Server.STS.DirectoryChanged(context.Background()); err != nil {
		t.Fatalf("reload directory: %v", err)
	}
}

// Subject is the Kubernetes subject wiftest credentials trust for name.
func Subject(name string) string { return "system:serviceaccount:default:" + name }

// CreateManagedIdentity creates an identity named name with a credential
// trusting e.Issuer for Subject(name) and the default audience.
func (e *Env) CreateManagedIdentity(t testing.TB, name string) directory.ManagedIdentity {
	t.Helper()
	ctx := context.Background()
	mi, err := e.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{
		TenantID: e.TenantID, SubscriptionID: "00000000-0000-0000-0000-000000000001", ResourceGroup: "rg",
		Name: name, ClientID: directory.NewID(), PrincipalID: directory.NewID(),
	})
	if err != nil {
		t.Fatalf("create managed identity: %v", err)
	}
	e.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "k8s-"+name, e.Issuer.URL, Subject(name), directory.DefaultAudience)
	return mi
}

// AddCredential adds a federated credential to the identity or application
// with client id parent.
func (e *Env) AddCredential(t testing.TB, parent string, kind directory.ParentKind, name, issuer, subject, audience string) directory.FederatedCredential {
	t.Helper()
	f, err := e.Store.CreateFederatedCredential(context.Background(), directory.FederatedCredential{
		TenantID: e.TenantID, ParentKind: kind, ParentClientID: parent, ID: directory.NewID(),
		Name: name, Issuer: issuer, Subject: subject, Audiences: []string{audience},
	})
	if err != nil {
		t.Fatalf("create federated credential: %v", err)
	}
	e.Changed(t)
	return f
}

// CreateResourceApp creates an application with identifierURI, access
// token version (1 or 2) and app roles assignable to applications.
func (e *Env) CreateResourceApp(t testing.TB, identifierURI string, version int, roles ...string) directory.Application {
	t.Helper()
	app := directory.Application{
		TenantID: e.TenantID, AppID: directory.NewID(), ObjectID: directory.NewID(), ServicePrincipalID: directory.NewID(),
		DisplayName: strings.TrimPrefix(identifierURI, "api://"), IdentifierURIs: []string{identifierURI},
		RequestedAccessTokenVersion: version,
	}
	for _, r := range roles {
		app.AppRoles = append(app.AppRoles, directory.AppRole{ID: directory.NewID(), Value: r, AllowedMemberTypes: []string{directory.MemberTypeApplication}, IsEnabled: true})
	}
	app, err := e.Store.CreateApplication(context.Background(), app)
	if err != nil {
		t.Fatalf("create application: %v", err)
	}
	e.Changed(t)
	return app
}

// Assign grants the app role role of resource app appID to principal.
func (e *Env) Assign(t testing.TB, principalID, appID, role string) {
	t.Helper()
	ctx := context.Background()
	app, err := e.Store.GetApplication(ctx, e.TenantID, appID)
	if err != nil {
		t.Fatalf("get application: %v", err)
	}
	var roleID string
	for _, r := range app.AppRoles {
		if r.Value == role {
			roleID = r.ID
		}
	}
	if roleID == "" {
		t.Fatalf("application %s has no role %q", appID, role)
	}
	if _, err := e.Store.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{
		TenantID: e.TenantID, ID: directory.NewID(), PrincipalID: principalID, ResourceAppID: appID, AppRoleID: roleID,
	}); err != nil {
		t.Fatalf("assign role: %v", err)
	}
	e.Changed(t)
}

// TokenResponse is a decoded reply of the token endpoint.
type TokenResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Post sends a form to path (e.g. "/{tenant}/oauth2/v2.0/token").
func (e *Env) Post(t testing.TB, path string, form url.Values) TokenResponse {
	t.Helper()
	resp, err := e.HTTPClient.PostForm(e.URL+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	tr := TokenResponse{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if err := json.Unmarshal(raw, &tr.Body); err != nil {
		t.Fatalf("POST %s: status %d, body not JSON: %q", path, resp.StatusCode, raw)
	}
	return tr
}

// ExchangeForm is the form of a v2 federated client-credentials request.
func ExchangeForm(clientID, assertion, scope string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion}, "scope": {scope},
	}
}

// Token does a real v2 exchange for the identity or application clientID,
// whose credentials must include one trusting e.Issuer, and returns the
// access token.
func (e *Env) Token(t testing.TB, clientID, scope string) string {
	t.Helper()
	creds, err := e.Store.ListFederatedCredentials(context.Background(), e.TenantID, clientID)
	if err != nil {
		t.Fatalf("list credentials of %s: %v", clientID, err)
	}
	sub, aud := "", ""
	for _, c := range creds {
		if c.Issuer == e.Issuer.URL && c.Subject != "" {
			sub, aud = c.Subject, c.Audience()
			break
		}
	}
	if sub == "" {
		t.Fatalf("no credential of %s trusts the test issuer %s", clientID, e.Issuer.URL)
	}
	r := e.Post(t, "/"+e.TenantID+"/oauth2/v2.0/token", ExchangeForm(clientID, e.Issuer.Mint(t, sub, aud, time.Hour), scope))
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: status %d: %s", r.Status, r.Raw)
	}
	tok, _ := r.Body["access_token"].(string)
	if tok == "" {
		t.Fatalf("exchange: no access_token in %s", r.Raw)
	}
	return tok
}

// String describes the environment in test logs.
func (e *Env) String() string {
	return fmt.Sprintf("wif token service at %s, tenant %s", e.URL, e.TenantID)
}

// Get fetches path from the service and returns the status and body.
func (e *Env) Get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := e.HTTPClient.Get(e.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metrics returns the service's /metrics page.
func (e *Env) Metrics(t testing.TB) string {
	t.Helper()
	code, body := e.Get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

// Claims decodes a JWT's payload without verifying it (tests read what a
// token they were just issued says).
func Claims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return m
}
