package imds

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/stsclient"
)

type stsToken = stsclient.Token

// staticExchanger answers every exchange with one token, in memory. It is
// used only where the token service is beside the point and a network round
// trip per input would make the test useless: the fuzz target (hundreds of
// thousands of inputs) and the constructor checks. Every behavioural test
// talks to a TLS token endpoint through the real stsclient.
type staticExchanger struct{ calls atomic.Int32 }

func (e *staticExchanger) Exchange(_ context.Context, clientID, scope string) (*stsclient.Token, error) {
	e.calls.Add(1)
	return &stsclient.Token{AccessToken: "tok|" + clientID + "|" + scope, TokenType: "Bearer", ObtainedAt: t0, ExpiresOn: t0.Add(time.Hour)}, nil
}

// FuzzTokenRequest sends arbitrary paths, queries and headers through the
// whole handler: it must never panic or answer 5xx, must always answer JSON
// (an error with error and error_description, or a token of the protocol's
// shape), and may only answer 200 to a request that proved itself (Metadata
// header or identity header).
func FuzzTokenRequest(f *testing.F) {
	f.Add("GET", "/metadata/identity/oauth2/token", "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", "true", "", "")
	f.Add("GET", "/metadata/identity/oauth2/token", "resource=api://a&client_id="+testClientID, "TRUE", "", "")
	f.Add("GET", "/metadata/identity/oauth2/token", "resource=a&resource=b", "true", "", "")
	f.Add("GET", "/metadata/identity/oauth2/token", "resource=%zz;x", "true", "", "")
	f.Add("GET", "/Metadata/identity/oauth2/token/", "resource=a&object_id=b", "true", "", "")
	f.Add("GET", "/metadata/instance", "api-version=2021-02-01", "true", "", "")
	f.Add("GET", "/msi/token", "api-version=2019-08-01&resource=api%3A%2F%2Fx&mi_res_id=%2Fsub", "", testHeader, "")
	f.Add("GET", "/msi/token", "resource=api%3A%2F%2Fx&client_id=OTHER", "", testHeader, "")
	f.Add("GET", "/msi/token", "resource=x", "", "wrong", "")
	f.Add("POST", "//metadata/../metadata/identity/oauth2/token", "resource=x", "true", "", "1.2.3.4")
	f.Add("GET", "/metadata/identity/oauth2/token", "resource=a%00b", "true", "", "")
	f.Fuzz(func(t *testing.T, method, path, rawQuery, metadataHdr, identityHdr, xff string) {
		ex := &staticExchanger{}
		s, err := New(Config{ClientID: testClientID, Exchanger: ex, IdentityHeader: testHeader, Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: rawQuery},
			Header:     http.Header{},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1,
			Host: "127.0.0.1:8000",
		}
		r = r.WithContext(context.Background())
		if metadataHdr != "" {
			r.Header.Set("Metadata", metadataHdr)
		}
		if identityHdr != "" {
			r.Header.Set(IdentityHeaderName, identityHdr)
		}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q %q: status %d: %s", method, path, rawQuery, w.Code, w.Body)
		}
		var m map[string]any
		isProbe := w.Header().Get("Content-Type") == "text/plain; charset=utf-8"
		if isProbe {
			return // /healthz, /readyz
		}
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %q %q: status %d, body not JSON: %q", method, path, rawQuery, w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			if _, ok := m["error"].(string); !ok {
				t.Fatalf("error answer without error: %s", w.Body)
			}
			if _, ok := m["error_description"].(string); !ok {
				t.Fatalf("error answer without error_description: %s", w.Body)
			}
			return
		}
		if method != http.MethodGet {
			t.Fatalf("200 to %s", method)
		}
		switch {
		case identityHdr == testHeader && m["client_id"] == testClientID:
		case strings.EqualFold(strings.TrimSpace(metadataHdr), "true") && xff == "" && m["refresh_token"] == "":
		default:
			t.Fatalf("200 without proof: metadata %q identity %q: %s", metadataHdr, identityHdr, w.Body)
		}
		if tok, _ := m["access_token"].(string); !strings.HasPrefix(tok, "tok|"+strings.ToLower(testClientID)+"|") {
			t.Fatalf("token %q", tok)
		}
		if ex.calls.Load() != 1 {
			t.Fatalf("calls = %d", ex.calls.Load())
		}
	})
}

// BenchmarkCacheHit measures one IMDS token request answered from the
// cache, through the whole handler (routing, checks, JSON).
func BenchmarkCacheHit(b *testing.B) {
	f := newFixture(b, nil)
	// Warm the cache with one real exchange at the TLS token endpoint.
	if a := f.get(b, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fprovider-api", metadata); a.status != 200 {
		b.Fatalf("%d %s", a.status, a.body)
	}
	r := httptest.NewRequest(http.MethodGet, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Fprovider-api", nil)
	r.Header.Set("Metadata", "true")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.imds.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
	b.StopTimer()
	if n := f.sts.exchanges.Load(); n != 1 {
		b.Fatalf("exchanges = %d", n)
	}
}
