package imds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/stsclient"
)

const (
	testTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClientID = "11111111-2222-3333-4444-555555555555"
	testHeader   = "0123456789abcdef0123456789abcdef"
	testAssert   = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpkZW1vIn0.c2ln"
)

// stubSTS is a minimal token endpoint on a real loopback TLS server. The
// tests in real_test.go run against wif's real token service
// (internal/wiftest); this stand-in is for what the real one cannot be made
// to do on demand: fail with 5xx, 429 or 503 and Retry-After, answer
// garbage, hold an exchange at a gate, and answer with a predictable token
// under a frozen clock so whole response bodies can be compared. It checks
// the grant like the real one would, counts exchanges, and answers by scope:
//
//	api://refuse/.default   400 invalid_resource (AADSTS500011)
//	api://nofic/.default    401 invalid_client (AADSTS700213)
//	api://throttle/.default 429 with Retry-After
//	api://boom/.default     500 text/plain
//	api://busy/.default     503 with Retry-After
//	api://garbage/.default  200 that is not a token response
//	anything else           200 with token "tok-<n>|<client id>|<scope>"
type stubSTS struct {
	srv       *httptest.Server
	exchanges atomic.Int32
	expiresIn int
	// gate, when set, holds every exchange until it is closed.
	gate    chan struct{}
	arrived chan struct{} // receives once per exchange that reached the gate
	mu      sync.Mutex
	bad     []string // grant problems seen
}

func newStubSTS(t testing.TB) *stubSTS {
	t.Helper()
	s := &stubSTS{expiresIn: 3599, arrived: make(chan struct{}, 1000)}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stubSTS) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bad = append(s.bad, fmt.Sprintf(format, args...))
}

func (s *stubSTS) problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

func (s *stubSTS) serve(w http.ResponseWriter, r *http.Request) {
	n := s.exchanges.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/"+testTenant+"/oauth2/v2.0/token" {
		s.problem("%s %s", r.Method, r.URL.Path)
	}
	if err := r.ParseForm(); err != nil {
		s.problem("form: %v", err)
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" || f.Get("client_assertion_type") != stsclient.ClientAssertionType || f.Get("client_assertion") != testAssert {
		s.problem("grant %v", f)
	}
	if s.gate != nil {
		s.arrived <- struct{}{}
		<-s.gate
	}
	scope := f.Get("scope")
	js := func(status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	switch scope {
	case "api://refuse/.default":
		js(400, `{"error":"invalid_resource","error_description":"AADSTS500011: The resource principal named api://refuse was not found in the tenant.","error_codes":[500011],"timestamp":"2026-11-23 10:00:00Z","trace_id":"trace-1","correlation_id":"corr-1","error_uri":"https://x/error?code=500011"}`)
	case "api://nofic/.default":
		js(401, `{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:demo'.","error_codes":[700213]}`)
	case "api://throttle/.default":
		w.Header().Set("Retry-After", "9")
		js(429, `{"error":"temporarily_unavailable","error_description":"slow down"}`)
	case "api://boom/.default":
		w.WriteHeader(500)
		_, _ = io.WriteString(w, "internal error\n")
	case "api://busy/.default":
		w.Header().Set("Retry-After", "3")
		js(503, `{"error":"temporarily_unavailable","error_description":"AADSTS90033: the store is unavailable"}`)
	case "api://garbage/.default":
		js(200, `{"hello":"world"}`)
	default:
		js(200, fmt.Sprintf(`{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":"tok-%d|%s|%s"}`,
			s.expiresIn, s.expiresIn, n, f.Get("client_id"), scope))
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type fixture struct {
	sts       *stubSTS
	imds      *Server
	url       string // http://127.0.0.1:PORT of the imds server
	clock     *clock
	tokenFile string
	reg       *prometheus.Registry
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newFixture starts the stub token service and a wif imds server in front
// of it (real stsclient, real loopback HTTP).
func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{sts: newStubSTS(t), clock: &clock{t: t0}, reg: prometheus.NewRegistry()}
	f.tokenFile = writeFile(t, t.TempDir(), "token", testAssert+"\n")
	c, err := stsclient.New(stsclient.Config{
		AuthorityHost: f.sts.srv.URL + "/",
		TenantID:      testTenant,
		TokenFile:     f.tokenFile,
		HTTPClient:    f.sts.srv.Client(),
		Now:           f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ClientID:       testClientID,
		Exchanger:      c,
		IdentityHeader: testHeader,
		TokenFile:      f.tokenFile,
		Metrics:        f.reg,
		Now:            f.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	f.imds, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.imds)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { f.imds.Close() })
	f.url = srv.URL
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(a.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", a.body, err)
	}
	return m
}

// get sends a GET with the given headers to the imds server.
func (f *fixture) get(t testing.TB, pathAndQuery string, headers map[string]string) answer {
	t.Helper()
	return f.do(t, context.Background(), http.MethodGet, pathAndQuery, headers)
}

func (f *fixture) do(t testing.TB, ctx context.Context, method, pathAndQuery string, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, f.url+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

var metadata = map[string]string{"Metadata": "true"}
var identity = map[string]string{IdentityHeaderName: testHeader}

func checkNoProblems(t *testing.T, s *stubSTS) {
	t.Helper()
	if p := s.problems(); len(p) > 0 {
		t.Errorf("the token service saw bad requests: %s", strings.Join(p, "; "))
	}
}
