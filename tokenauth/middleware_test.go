package tokenauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wif-project/wif/tokenauth"
)

func TestMiddlewareWire(t *testing.T) {
	f := newFixture(t)
	v, err := tokenauth.New(f.cfg(nil))
	if err != nil {
		t.Fatal(err)
	}
	expiredV, err := tokenauth.New(f.cfg(func(c *tokenauth.Config) { c.Now = func() time.Time { return t0.Add(3 * time.Hour) } }))
	if err != nil {
		t.Fatal(err)
	}
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := tokenauth.FromContext(r.Context())
		if !ok {
			t.Error("no claims in context")
			return
		}
		io.WriteString(w, "hello "+c.ClientID)
	})
	good := f.rs(t, nil)
	tests := []struct {
		name      string
		v         *tokenauth.Validator
		roles     []string
		auth      string
		status    int
		challenge string
		body      string
	}{
		{"valid", v, nil, "Bearer " + good, 200, "", "hello " + appID},
		{"scheme is case-insensitive", v, nil, "bearer " + good, 200, "", "hello " + appID},
		{"role present", v, []string{"Data.Read"}, "Bearer " + good, 200, "", "hello " + appID},
		{"missing", v, nil, "", 401, "Bearer", `{"error":"invalid_token","error_description":"The request has no bearer token."}`},
		{"basic scheme", v, nil, "Basic " + good, 401, "Bearer", `{"error":"invalid_token","error_description":"The request has no bearer token."}`},
		{"expired", expiredV, nil, "Bearer " + good, 401, `Bearer error="invalid_token", error_description="The token has expired."`,
			`{"error":"token_expired","error_description":"The token has expired."}`},
		{"bad signature", v, nil, "Bearer " + good[:len(good)-4] + "AAAA", 401,
			`Bearer error="invalid_token", error_description="Signature validation failed."`,
			`{"error":"invalid_token","error_description":"Signature validation failed."}`},
		{"wrong audience quotes escaped", v, nil, "Bearer " + f.rs(t, map[string]any{"aud": `api://"x"`}), 401,
			`Bearer error="invalid_token", error_description="Audience \"api://\\\"x\\\"\" is not accepted (accepted: api://mydummyapi)."`,
			`{"error":"invalid_token","error_description":"Audience \"api://\\\"x\\\"\" is not accepted (accepted: api://mydummyapi)."}`},
		{"role missing", v, []string{"Data.Write"}, "Bearer " + good, 403,
			`Bearer error="insufficient_scope", error_description="The token lacks the role \"Data.Write\"."`,
			`{"error":"insufficient_scope","error_description":"The token lacks the role \"Data.Write\"."}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tokenauth.Middleware(tt.v)(tokenauth.RequireRoles(tt.roles...)(backend))
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %s\n want %s", got, tt.challenge)
			}
			if got := string(body); got != tt.body && got != tt.body+"\n" {
				t.Errorf("body = %s\nwant %s", got, tt.body)
			}
			if tt.status != 200 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}
