package gateway

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/testissuer"
)

func wrap(inbound string) string {
	return "<policies>\n<inbound>\n<base/>\n" + inbound + "\n</inbound>\n<backend><base/></backend>\n<outbound><base/></outbound>\n</policies>"
}

// jwtPolicy is a validate-jwt with attrs and children; keys from the test
// issuer's Entra-form discovery URL unless children name others.
func jwtPolicy(attrs, children string) string { return wrap(jwtInner(attrs, children)) }

// jwtInner is jwtPolicy's <validate-jwt> element alone.
func jwtInner(attrs, children string) string {
	if !strings.Contains(children, "issuer-signing-keys") && !strings.Contains(children, "openid-config") {
		children = `<openid-config url="https://login.microsoftonline.com/` + tid + `/v2.0/.well-known/openid-configuration"/>` + children
	}
	return `<validate-jwt ` + attrs + `>` + children + `</validate-jwt>`
}

const stdChildren = `<audiences><audience>` + aud + `</audience></audiences><issuers><issuer>https://sts.windows.net/` + tid + `/</issuer></issuers>`

func selfSignedCert(t *testing.T, e *gwEnv) string {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signing"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &e.iss.Key.PublicKey, e.iss.Key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidateJWTAttributes covers every validate-jwt attribute and child
// element of spec/gateway.md, with APIM's defaults.
func TestValidateJWTAttributes(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	secretB64 := base64.StdEncoding.EncodeToString(secret)
	key := testissuer.TestKey(t)
	n := base64.RawURLEncoding.EncodeToString(key.PublicKey.N.Bytes())
	type req struct {
		path string
		hdr  map[string]string
	}
	tests := []struct {
		name     string
		policy   func(e *gwEnv) string
		req      func(t *testing.T, e *gwEnv) req
		status   int
		message  string // APIM "message"
		errCode  string // seed 001 "error"
		noHeader bool   // no WWW-Authenticate expected
	}{
		{name: "header-name with a custom header, no scheme",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="X-Token"`, stdChildren) },
			req:    func(t *testing.T, e *gwEnv) req { return req{"/", map[string]string{"X-Token": e.v1(t, nil)}} }, status: 200},
		{name: "header-name Authorization without require-scheme strips Bearer",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 200},
		{name: "query-parameter-name",
			policy: func(*gwEnv) string { return jwtPolicy(`query-parameter-name="access_token"`, stdChildren) },
			req:    func(t *testing.T, e *gwEnv) req { return req{"/?access_token=" + e.v1(t, nil), nil} }, status: 200},
		{name: "query-parameter-name absent: default message JWT not present.",
			policy: func(*gwEnv) string { return jwtPolicy(`query-parameter-name="access_token"`, stdChildren) },
			req:    func(t *testing.T, e *gwEnv) req { return req{"/", nil} }, status: 401, message: "JWT not present.", errCode: "invalid_token"},
		{name: "token-value literal",
			policy: func(e *gwEnv) string {
				return jwtPolicy(`token-value="`+e.iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID})+`"`, stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req { return req{"/", nil} }, status: 200},
		{name: "failed-validation-httpcode 403 (no challenge)",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization" failed-validation-httpcode="403"`, stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req { return req{"/", nil} }, status: 403, message: "JWT not present.", errCode: "invalid_token", noHeader: true},
		{name: "default message for an invalid token: JWT not valid.",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"aud": "api://x"})}}
			}, status: 401, message: "JWT not valid.", errCode: "invalid_token"},
		{name: "failed-validation-error-message",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization" failed-validation-error-message="Go away"`, stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req { return req{"/", nil} }, status: 401, message: "Go away", errCode: "invalid_token"},
		{name: "require-expiration-time defaults to true",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"exp": nil})}}
			}, status: 401, message: "JWT not valid.", errCode: "token_expired"},
		{name: "require-expiration-time false",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization" require-expiration-time="false"`, stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"exp": nil})}}
			}, status: 200},
		{name: "require-scheme Bearer refuses a bare token",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization" require-scheme="Bearer"`, stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req { return req{"/", map[string]string{"Authorization": e.v1(t, nil)}} }, status: 401, message: "JWT not valid.", errCode: "invalid_token"},
		{name: "clock-skew defaults to 0",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				tok := e.iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: e.clock().Add(-time.Hour - 10*time.Second)})
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 401, message: "JWT not valid.", errCode: "token_expired"},
		{name: "clock-skew 60 accepts a token expired 10 s ago",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization" clock-skew="60"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				tok := e.iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: e.clock().Add(-time.Hour - 10*time.Second)})
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 200},
		{name: "output-token-variable-name is accepted",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization" output-token-variable-name="jwt"`, stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 200},
		{name: "openid-config at the issuer's own URL",
			policy: func(e *gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<openid-config url="`+e.iss.DiscoveryURL(tid)+`"/>`+stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 200},
		{name: "issuer-signing-keys symmetric allows HS256",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<issuer-signing-keys><key>`+secretB64+`</key></issuer-signing-keys>`+stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req {
				tok := testissuer.Sign(t, "HS256", secret, nil, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 200},
		{name: "HS256 refused without an inline symmetric key",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				tok := testissuer.Sign(t, "HS256", secret, nil, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 401, message: "JWT not valid.", errCode: "invalid_token"},
		{name: "issuer-signing-keys RSA n/e",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<issuer-signing-keys><key n="`+n+`" e="AQAB"/></issuer-signing-keys>`+stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req {
				tok := testissuer.Sign(t, "RS256", key, nil, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 200},
		{name: "issuer-signing-keys certificate-id",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<issuer-signing-keys><key certificate-id="signing"/></issuer-signing-keys>`+stdChildren)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 200},
		{name: "RS512 is accepted",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				tok := testissuer.Sign(t, "RS512", e.iss.Key, map[string]any{"kid": e.iss.KID}, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 200},
		{name: "PS256 is accepted",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				tok := testissuer.Sign(t, "PS256", e.iss.Key, map[string]any{"kid": e.iss.KID}, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 200},
		{name: "RS384 is not in APIM's set",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, stdChildren) },
			req: func(t *testing.T, e *gwEnv) req {
				tok := testissuer.Sign(t, "RS384", e.iss.Key, map[string]any{"kid": e.iss.KID}, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
				return req{"/", map[string]string{"Authorization": "Bearer " + tok}}
			}, status: 401, message: "JWT not valid.", errCode: "invalid_token"},
		{name: "audiences: any listed one",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<audiences><audience>api://a</audience><audience>api://b</audience></audiences>`)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"aud": "api://b"})}}
			}, status: 200},
		{name: "no audiences: any audience (APIM default)",
			policy: func(*gwEnv) string { return jwtPolicy(`header-name="Authorization"`, "") },
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"aud": "api://whatever", "iss": "https://x/"})}}
			}, status: 200},
		{name: "issuers: any listed one",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<issuers><issuer>https://a/</issuer><issuer>https://sts.windows.net/`+tid+`/</issuer></issuers>`)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 200},
		{name: "issuers: unlisted",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, `<issuers><issuer>https://a/</issuer></issuers>`)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 401, message: "JWT not valid.", errCode: "invalid_token"},
		{name: "required-claims match any with separator",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, stdChildren+`<required-claims><claim name="scp" match="any" separator=" "><value>write</value><value>admin</value></claim></required-claims>`)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"scp": "read write"})}}
			}, status: 200},
		{name: "required-claims match all (default) over roles",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, stdChildren+`<required-claims><claim name="roles"><value>A</value><value>B</value></claim></required-claims>`)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"roles": []string{"A"}})}}
			}, status: 401, message: "JWT not valid.", errCode: "insufficient_scope"},
		{name: "required-claims presence only",
			policy: func(*gwEnv) string {
				return jwtPolicy(`header-name="Authorization"`, stdChildren+`<required-claims><claim name="xms_mirid"/></required-claims>`)
			},
			req: func(t *testing.T, e *gwEnv) req {
				return req{"/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}}
			}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *gwEnv
			e = startGatewayLazy(t, func(e2 *gwEnv) string { e = e2; return tt.policy(e2) }, func(c *Config) {
				c.Certificates = map[string]string{"signing": selfSignedCert(t, e)}
			})
			rq := tt.req(t, e)
			r := e.do(t, "GET", rq.path, rq.hdr)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if tt.status == 200 {
				if got, _ := e.backend.lastRequest(); got == nil || got.Header.Get(HeaderTenantID) != tid {
					t.Errorf("backend did not get the identity")
				}
				return
			}
			if r.json["message"] != tt.message || r.json["error"] != tt.errCode {
				t.Errorf("body = %s, want message %q error %q", r.body, tt.message, tt.errCode)
			}
			if has := r.header.Get("WWW-Authenticate") != ""; has == tt.noHeader {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// startGatewayLazy is startGateway for policies that need the issuer first.
func startGatewayLazy(t *testing.T, policy func(*gwEnv) string, cfgMod func(*Config)) *gwEnv {
	t.Helper()
	pre := &gwEnv{iss: testissuer.Start(t), backend: startBackend(t), now: time.Now()}
	xml := policy(pre)
	return startGatewayWith(t, pre, xml, cfgMod)
}
