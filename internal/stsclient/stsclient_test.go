package stsclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tokenService is a minimal token endpoint on a real loopback TLS server.
// It stands in for wif's token service (internal/wiftest), which has not
// landed yet; what is under test here is the client's side of the wire.
type tokenService struct {
	srv   *httptest.Server
	calls atomic.Int32
	// last request's form and headers
	form   atomic.Pointer[url.Values]
	header atomic.Pointer[http.Header]
	path   atomic.Pointer[string]
	answer func(w http.ResponseWriter, r *http.Request)
}

func newTokenService(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *tokenService {
	t.Helper()
	ts := &tokenService{answer: answer}
	ts.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.calls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f := r.PostForm
		h := r.Header.Clone()
		p := r.URL.Path
		ts.form.Store(&f)
		ts.header.Store(&h)
		ts.path.Store(&p)
		ts.answer(w, r)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func jsonAnswer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func writeTokenFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var fixedNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newClient(t *testing.T, ts *tokenService, tokenFile string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		AuthorityHost: ts.srv.URL + "/",
		TenantID:      "72f988bf-86f1-41af-91ab-2d7cd011db47",
		TokenFile:     tokenFile,
		HTTPClient:    ts.srv.Client(),
		Now:           func() time.Time { return fixedNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExchangeSendsTheFederatedGrant(t *testing.T) {
	ts := newTokenService(t, jsonAnswer(200, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"at-1"}`))
	// azidentity does not trim the file; we do (a trailing newline is common).
	c := newClient(t, ts, writeTokenFile(t, "  eyJhbGciOiJSUzI1NiJ9.e30.sig\n"), nil)
	tok, err := c.Exchange(context.Background(), "11111111-1111-1111-1111-111111111111", "api://provider-api/.default")
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {"11111111-1111-1111-1111-111111111111"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {"eyJhbGciOiJSUzI1NiJ9.e30.sig"},
		"scope":                 {"api://provider-api/.default"},
	}
	if got := *ts.form.Load(); !reflect.DeepEqual(got, want) {
		t.Errorf("form = %v, want %v", got, want)
	}
	if got := *ts.path.Load(); got != "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token" {
		t.Errorf("path = %q", got)
	}
	h := *ts.header.Load()
	if h.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	if len(h.Get("client-request-id")) != 36 {
		t.Errorf("client-request-id = %q, want a GUID", h.Get("client-request-id"))
	}
	wantTok := &Token{AccessToken: "at-1", TokenType: "Bearer", ObtainedAt: fixedNow, ExpiresOn: fixedNow.Add(3599 * time.Second)}
	if !reflect.DeepEqual(tok, wantTok) {
		t.Errorf("token = %+v, want %+v", tok, wantTok)
	}
	if c.Endpoint() != ts.srv.URL+"/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token" {
		t.Errorf("Endpoint() = %q", c.Endpoint())
	}
}

func TestExchangeParsesTokenResponses(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      *Token
		malformed bool
	}{
		{"v2 integers", `{"token_type":"Bearer","expires_in":3599,"access_token":"a"}`,
			&Token{AccessToken: "a", TokenType: "Bearer", ObtainedAt: fixedNow, ExpiresOn: fixedNow.Add(3599 * time.Second)}, false},
		{"v1 strings", `{"token_type":"Bearer","expires_in":"3600","expires_on":"1","access_token":"a"}`,
			&Token{AccessToken: "a", TokenType: "Bearer", ObtainedAt: fixedNow, ExpiresOn: fixedNow.Add(time.Hour)}, false},
		{"refresh_in", `{"token_type":"Bearer","expires_in":86399,"refresh_in":43199,"access_token":"a"}`,
			&Token{AccessToken: "a", TokenType: "Bearer", ObtainedAt: fixedNow, ExpiresOn: fixedNow.Add(86399 * time.Second), RefreshOn: fixedNow.Add(43199 * time.Second)}, false},
		{"no token_type means Bearer", `{"expires_in":60,"access_token":"a"}`,
			&Token{AccessToken: "a", TokenType: "Bearer", ObtainedAt: fixedNow, ExpiresOn: fixedNow.Add(time.Minute)}, false},
		{"no access_token", `{"token_type":"Bearer","expires_in":3599}`, nil, true},
		{"no expires_in", `{"token_type":"Bearer","access_token":"a"}`, nil, true},
		{"zero expires_in", `{"expires_in":0,"access_token":"a"}`, nil, true},
		{"negative expires_in", `{"expires_in":-5,"access_token":"a"}`, nil, true},
		{"expires_in not a number", `{"expires_in":"soon","access_token":"a"}`, nil, true},
		{"html", `<html>proxy login</html>`, nil, true},
		{"empty", ``, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenService(t, jsonAnswer(200, tc.body))
			c := newClient(t, ts, writeTokenFile(t, "x.y.z"), nil)
			tok, err := c.Exchange(context.Background(), "cid", "api://a/.default")
			if tc.malformed {
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("err = %v, want ErrMalformedResponse", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tok, tc.want) {
				t.Errorf("token = %+v, want %+v", tok, tc.want)
			}
		})
	}
}

func TestExchangeReturnsTheServiceRefusal(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		hdr    map[string]string
		want   ResponseError
	}{
		{
			name:   "entra error",
			status: 401,
			body: `{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:x'.",` +
				`"error_codes":[700213],"timestamp":"2026-11-23 10:00:00Z","trace_id":"t-1","correlation_id":"c-1","error_uri":"https://h/error?code=700213"}`,
			want: ResponseError{StatusCode: 401, ErrorCode: "invalid_client",
				Description: "AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:x'.",
				ErrorCodes:  []int{700213}, TraceID: "t-1", CorrelationID: "c-1", Timestamp: "2026-11-23 10:00:00Z", ErrorURI: "https://h/error?code=700213"},
		},
		{
			name: "overload with Retry-After", status: 503, body: `{"error":"temporarily_unavailable","error_description":"busy"}`,
			hdr:  map[string]string{"Retry-After": "7"},
			want: ResponseError{StatusCode: 503, ErrorCode: "temporarily_unavailable", Description: "busy", RetryAfter: "7"},
		},
		{
			name: "not json", status: 502, body: "Bad Gateway\n",
			want: ResponseError{StatusCode: 502, Body: "Bad Gateway"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenService(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.hdr {
					w.Header().Set(k, v)
				}
				jsonAnswer(tc.status, tc.body)(w, r)
			})
			c := newClient(t, ts, writeTokenFile(t, "x.y.z"), nil)
			_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
			var re *ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *ResponseError", err, err)
			}
			if !reflect.DeepEqual(*re, tc.want) {
				t.Errorf("error = %+v\nwant    %+v", *re, tc.want)
			}
		})
	}
}

func TestExchangeRereadsTheTokenFile(t *testing.T) {
	ts := newTokenService(t, jsonAnswer(200, `{"expires_in":3599,"access_token":"a"}`))
	path := writeTokenFile(t, "first.token.x")
	c := newClient(t, ts, path, nil)
	if _, err := c.Exchange(context.Background(), "cid", "api://a/.default"); err != nil {
		t.Fatal(err)
	}
	if got := ts.form.Load().Get("client_assertion"); got != "first.token.x" {
		t.Fatalf("assertion = %q", got)
	}
	// The kubelet rotates the projected token by replacing the file.
	if err := os.WriteFile(path, []byte("second.token.y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(context.Background(), "cid", "api://a/.default"); err != nil {
		t.Fatal(err)
	}
	if got := ts.form.Load().Get("client_assertion"); got != "second.token.y" {
		t.Fatalf("assertion after rotation = %q, want second.token.y", got)
	}
}

func TestExchangeAssertionFailures(t *testing.T) {
	ts := newTokenService(t, jsonAnswer(200, `{"expires_in":3599,"access_token":"a"}`))
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("a", MaxAssertionBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, wantSub string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"empty", writeTokenFile(t, " \n"), "file is empty"},
		{"too big", big, "over 65536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, ts, tc.file, nil)
			_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
			var ae *AssertionError
			if !errors.As(err, &ae) || ae.Path != tc.file || !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("err = %v, want *AssertionError for %s containing %q", err, tc.file, tc.wantSub)
			}
		})
	}
	if n := ts.calls.Load(); n != 0 {
		t.Errorf("token service called %d times without an assertion", n)
	}
	t.Run("assertion func", func(t *testing.T) {
		c := newClient(t, ts, "", func(c *Config) {
			c.Assertion = func(context.Context) (string, error) { return "", errors.New("issuer down") }
		})
		_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
		var ae *AssertionError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "issuer down") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestExchangeTransportFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ts := newTokenService(t, jsonAnswer(200, `{}`))
		c := newClient(t, ts, writeTokenFile(t, "a.b.c"), nil)
		ts.srv.Close()
		_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
		var te *TransportError
		if !errors.As(err, &te) || te.Timeout() {
			t.Fatalf("err = %v, want a non-timeout *TransportError", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		ts := newTokenService(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		c := newClient(t, ts, writeTokenFile(t, "a.b.c"), func(c *Config) { c.Timeout = 50 * time.Millisecond })
		_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
		var te *TransportError
		if !errors.As(err, &te) || !te.Timeout() {
			t.Fatalf("err = %v, want a timeout *TransportError", err)
		}
	})
	t.Run("caller's context", func(t *testing.T) {
		ts := newTokenService(t, jsonAnswer(200, `{}`))
		c := newClient(t, ts, writeTokenFile(t, "a.b.c"), nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Exchange(ctx, "cid", "api://a/.default")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		ts := newTokenService(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/token", http.StatusTemporaryRedirect)
		})
		c := newClient(t, ts, writeTokenFile(t, "a.b.c"), func(c *Config) {
			// NewHTTPClient's redirect policy, with the test server's trust.
			hc := NewHTTPClient(nil)
			hc.Transport = ts.srv.Client().Transport
			c.HTTPClient = hc
		})
		_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
		var re *ResponseError
		if !errors.As(err, &re) || re.StatusCode != 307 {
			t.Fatalf("err = %v, want *ResponseError 307", err)
		}
		if ts.calls.Load() != 1 {
			t.Errorf("calls = %d, want 1", ts.calls.Load())
		}
	})
	t.Run("oversized answer", func(t *testing.T) {
		ts := newTokenService(t, jsonAnswer(200, `{"expires_in":3599,"access_token":"`+strings.Repeat("a", 2000)+`"}`))
		c := newClient(t, ts, writeTokenFile(t, "a.b.c"), func(c *Config) { c.MaxResponseBytes = 1000 })
		_, err := c.Exchange(context.Background(), "cid", "api://a/.default")
		if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), "over 1000 bytes") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantSub []string
	}{
		{"ok", Config{AuthorityHost: "https://h/", TenantID: "contoso.onmicrosoft.com", TokenFile: "/f"}, nil},
		{"ok no slash", Config{AuthorityHost: "https://h:8443", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", TokenFile: "/f"}, nil},
		{"empty", Config{}, []string{"authority host is empty", `tenant id ""`, "no federated token file"}},
		{"http", Config{AuthorityHost: "http://h/", TenantID: "t", TokenFile: "/f"}, []string{"must be an https URL"}},
		{"query", Config{AuthorityHost: "https://h/?x=1", TenantID: "t", TokenFile: "/f"}, []string{"must not have a query"}},
		{"tenant with slash", Config{AuthorityHost: "https://h/", TenantID: "t/../x", TokenFile: "/f"}, []string{`tenant id "t/../x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if tc.wantSub == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	c, err := New(Config{AuthorityHost: "https://h:8443", TenantID: "t1", TokenFile: "/f"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoint() != "https://h:8443/t1/oauth2/v2.0/token" {
		t.Errorf("endpoint = %q", c.Endpoint())
	}
}

func TestLoadCAFile(t *testing.T) {
	if _, err := LoadCAFile(writeTokenFile(t, "not pem")); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadCAFile(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

// FuzzParseAnswer feeds arbitrary token-service answers to the parsers:
// they must never panic, and a parsed token must be usable.
func FuzzParseAnswer(f *testing.F) {
	f.Add(200, []byte(`{"token_type":"Bearer","expires_in":3599,"access_token":"a"}`))
	f.Add(200, []byte(`{"expires_in":"3599","access_token":"a","refresh_in":"10"}`))
	f.Add(401, []byte(`{"error":"invalid_client","error_description":"x","error_codes":[700213]}`))
	f.Add(400, []byte(`{"error":"invalid_scope","error_codes":[1.5]}`))
	f.Add(500, []byte(`oops`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status/100 == 2 {
			tok, err := parseToken(body, fixedNow)
			if err != nil {
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("error not ErrMalformedResponse: %v", err)
				}
				return
			}
			if tok.AccessToken == "" || !tok.ExpiresOn.After(fixedNow) {
				t.Fatalf("unusable token %+v", tok)
			}
			return
		}
		e := parseError(&http.Response{StatusCode: status, Header: http.Header{}}, body)
		if e.StatusCode != status || e.Error() == "" {
			t.Fatalf("bad error %+v", e)
		}
	})
}
