package tokenauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/gateway/testissuer"
	"github.com/wif-project/wif/tokenauth"
)

const (
	tid   = "d12058fe-ecf4-454a-9a69-cef5686fc24f"
	appID = "ad0c8137-362f-451a-93b0-d08040425294"
	aud   = "api://mydummyapi"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type fixture struct {
	key    *rsa.PrivateKey
	other  *rsa.PrivateKey
	iss    *testissuer.Issuer // used only for Claims(); its server is not contacted
	secret []byte
}

var otherKey atomic.Pointer[rsa.PrivateKey]

func newFixture(t testing.TB) *fixture {
	f := &fixture{key: testissuer.TestKey(t), iss: &testissuer.Issuer{URL: "https://wif.test", Key: testissuer.TestKey(t), KID: "k1"}}
	if otherKey.Load() == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		otherKey.CompareAndSwap(nil, k)
	}
	f.other = otherKey.Load()
	f.secret = []byte("0123456789abcdef0123456789abcdef")
	return f
}

func (f *fixture) claims(mod map[string]any) map[string]any {
	return f.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: t0, Roles: []string{"Data.Read"}, Extra: mod})
}

func (f *fixture) rs(t testing.TB, mod map[string]any) string {
	return testissuer.Sign(t, "RS256", f.key, map[string]any{"kid": "k1"}, f.claims(mod))
}

func (f *fixture) cfg(mod func(*tokenauth.Config)) tokenauth.Config {
	c := tokenauth.Config{
		KeySets:   []tokenauth.KeySet{tokenauth.StaticKeySet{{Key: &f.key.PublicKey, KeyID: "k1", Use: "sig"}}},
		Issuers:   []string{"https://sts.windows.net/" + tid + "/"},
		Audiences: []string{aud},
		Now:       func() time.Time { return t0.Add(time.Minute) },
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestValidate(t *testing.T) {
	f := newFixture(t)
	pubJWK := tokenauth.StaticKeySet{{Key: &f.key.PublicKey, KeyID: "k1"}}
	tests := []struct {
		name     string
		cfg      func(*tokenauth.Config)
		token    func(t *testing.T) string
		wantKind tokenauth.Kind // 0 = valid
		wantMsg  string
	}{
		{name: "valid v1 token", token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "empty", token: func(*testing.T) string { return "" }, wantKind: tokenauth.KindMissing, wantMsg: "no token"},
		{name: "not a JWT", token: func(*testing.T) string { return "abc.def" }, wantKind: tokenauth.KindMalformed,
			wantMsg: "not a JWT: want three base64url parts separated by dots"},
		{name: "four parts", token: func(t *testing.T) string { return f.rs(t, nil) + ".x" }, wantKind: tokenauth.KindMalformed},
		{name: "header not base64", token: func(*testing.T) string { return "%%%.e30.c2ln" }, wantKind: tokenauth.KindMalformed,
			wantMsg: "JWT header is not base64url"},
		{name: "alg none", token: func(t *testing.T) string { return testissuer.Sign(t, "none", nil, nil, f.claims(nil)) + "c2ln" },
			wantKind: tokenauth.KindMalformed, wantMsg: `unsigned tokens (alg "none") are refused`},
		{name: "alg None mixed case", token: func(t *testing.T) string {
			return testissuer.Sign(t, "HS256", f.secret, map[string]any{"alg": "None"}, f.claims(nil))
		}, wantKind: tokenauth.KindMalformed, wantMsg: `unsigned tokens (alg "None") are refused`},
		{name: "crit header", token: func(t *testing.T) string {
			return testissuer.Sign(t, "RS256", f.key, map[string]any{"kid": "k1", "crit": []string{"exp"}}, f.claims(nil))
		}, wantKind: tokenauth.KindMalformed, wantMsg: "tokens with critical header parameters (crit) are refused"},
		{name: "RS512 not in default allow-list", token: func(t *testing.T) string {
			return testissuer.Sign(t, "RS512", f.key, map[string]any{"kid": "k1"}, f.claims(nil))
		}, wantKind: tokenauth.KindMalformed, wantMsg: `algorithm "RS512" is not allowed (allowed: RS256)`},
		{name: "RS512 allowed", cfg: func(c *tokenauth.Config) { c.Algorithms = []string{"RS256", "RS512", "PS256"} },
			token: func(t *testing.T) string {
				return testissuer.Sign(t, "RS512", f.key, map[string]any{"kid": "k1"}, f.claims(nil))
			}},
		{name: "PS256 allowed", cfg: func(c *tokenauth.Config) { c.Algorithms = []string{"PS256"} },
			token: func(t *testing.T) string {
				return testissuer.Sign(t, "PS256", f.key, map[string]any{"kid": "k1"}, f.claims(nil))
			}},
		{name: "HS256 signed with the RSA public key (key confusion)",
			cfg: func(c *tokenauth.Config) {
				c.Algorithms = []string{"RS256", "HS256"}
				c.KeySets = []tokenauth.KeySet{pubJWK}
			},
			token: func(t *testing.T) string {
				der := f.key.PublicKey.N.Bytes()
				return testissuer.Sign(t, "HS256", der, map[string]any{"kid": "k1"}, f.claims(nil))
			}, wantKind: tokenauth.KindBadSignature, wantMsg: "signature validation failed"},
		{name: "HS256 with a symmetric key", cfg: func(c *tokenauth.Config) {
			c.Algorithms = []string{"HS256"}
			c.KeySets = []tokenauth.KeySet{tokenauth.StaticKeySet{{Key: f.secret}}}
		}, token: func(t *testing.T) string { return testissuer.Sign(t, "HS256", f.secret, nil, f.claims(nil)) }},
		{name: "RS256 token against a symmetric key", cfg: func(c *tokenauth.Config) {
			c.Algorithms = []string{"RS256", "HS256"}
			c.KeySets = []tokenauth.KeySet{tokenauth.StaticKeySet{{Key: f.secret}}}
		}, token: func(t *testing.T) string { return f.rs(t, nil) }, wantKind: tokenauth.KindBadSignature},
		{name: "signed by another key", token: func(t *testing.T) string {
			return testissuer.Sign(t, "RS256", f.other, map[string]any{"kid": "k1"}, f.claims(nil))
		}, wantKind: tokenauth.KindBadSignature, wantMsg: "signature validation failed"},
		{name: "unknown kid", token: func(t *testing.T) string {
			return testissuer.Sign(t, "RS256", f.key, map[string]any{"kid": "k9"}, f.claims(nil))
		}, wantKind: tokenauth.KindBadSignature, wantMsg: `signature validation failed: no trusted key with kid "k9"`},
		{name: "no kid tries every key", token: func(t *testing.T) string { return testissuer.Sign(t, "RS256", f.key, nil, f.claims(nil)) }},
		{name: "jwk header is ignored", token: func(t *testing.T) string {
			pub := jose.JSONWebKey{Key: &f.other.PublicKey, KeyID: "k1"}
			return testissuer.Sign(t, "RS256", f.other, map[string]any{"kid": "k1", "jwk": pub, "jku": "https://evil.test/keys"}, f.claims(nil))
		}, wantKind: tokenauth.KindBadSignature},
		{name: "key with use enc is skipped", cfg: func(c *tokenauth.Config) {
			c.KeySets = []tokenauth.KeySet{tokenauth.StaticKeySet{{Key: &f.key.PublicKey, KeyID: "k1", Use: "enc"}}}
		}, token: func(t *testing.T) string { return f.rs(t, nil) }, wantKind: tokenauth.KindBadSignature},
		{name: "tampered payload", token: func(t *testing.T) string {
			a := f.rs(t, nil)
			b := f.rs(t, map[string]any{"appid": "evil"})
			return b[:len(b)-len(sigOf(b))] + sigOf(a)
		}, wantKind: tokenauth.KindBadSignature},
		{name: "expired", cfg: func(c *tokenauth.Config) { c.Now = func() time.Time { return t0.Add(2 * time.Hour) } },
			token: func(t *testing.T) string { return f.rs(t, nil) }, wantKind: tokenauth.KindExpired, wantMsg: "the token has expired"},
		{name: "expired but within clock skew", cfg: func(c *tokenauth.Config) {
			c.Now = func() time.Time { return t0.Add(time.Hour + 30*time.Second) }
			c.ClockSkew = time.Minute
		}, token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "expired one second past the skew", cfg: func(c *tokenauth.Config) {
			c.Now = func() time.Time { return t0.Add(time.Hour + 61*time.Second) }
			c.ClockSkew = time.Minute
		}, token: func(t *testing.T) string { return f.rs(t, nil) }, wantKind: tokenauth.KindExpired},
		{name: "no exp", token: func(t *testing.T) string { return f.rs(t, map[string]any{"exp": nil}) },
			wantKind: tokenauth.KindExpired, wantMsg: "the token has no expiration time (exp)"},
		{name: "no exp allowed (require-expiration-time=false)", cfg: func(c *tokenauth.Config) { c.InsecureAllowMissingExpiration = true },
			token: func(t *testing.T) string { return f.rs(t, map[string]any{"exp": nil}) }},
		{name: "exp not a number", token: func(t *testing.T) string { return f.rs(t, map[string]any{"exp": "tomorrow"}) },
			wantKind: tokenauth.KindMalformed, wantMsg: "exp tomorrow is not a NumericDate"},
		{name: "not yet valid", cfg: func(c *tokenauth.Config) { c.Now = func() time.Time { return t0.Add(-10 * time.Second) } },
			token: func(t *testing.T) string { return f.rs(t, nil) }, wantKind: tokenauth.KindNotYetValid, wantMsg: "the token is not valid yet"},
		{name: "nbf within skew", cfg: func(c *tokenauth.Config) {
			c.Now = func() time.Time { return t0.Add(-10 * time.Second) }
			c.ClockSkew = 10 * time.Second
		}, token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "wrong issuer", token: func(t *testing.T) string { return f.rs(t, map[string]any{"iss": "https://evil.test/"}) },
			wantKind: tokenauth.KindWrongIssuer, wantMsg: `issuer "https://evil.test/" is not accepted`},
		{name: "issuer differs by trailing slash", token: func(t *testing.T) string {
			return f.rs(t, map[string]any{"iss": "https://sts.windows.net/" + tid})
		}, wantKind: tokenauth.KindWrongIssuer},
		{name: "any of several issuers", cfg: func(c *tokenauth.Config) {
			c.Issuers = []string{"https://a.test/", "https://sts.windows.net/" + tid + "/"}
		},
			token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "issuer check skipped", cfg: func(c *tokenauth.Config) { c.Issuers = nil; c.InsecureSkipIssuerCheck = true },
			token: func(t *testing.T) string { return f.rs(t, map[string]any{"iss": "https://other.test/"}) }},
		{name: "wrong audience", token: func(t *testing.T) string { return f.rs(t, map[string]any{"aud": "api://other"}) },
			wantKind: tokenauth.KindWrongAudience, wantMsg: `audience "api://other" is not accepted (accepted: api://mydummyapi)`},
		{name: "audience array with one accepted", token: func(t *testing.T) string {
			return f.rs(t, map[string]any{"aud": []string{"api://other", aud}})
		}},
		{name: "audience check skipped", cfg: func(c *tokenauth.Config) { c.Audiences = nil; c.InsecureSkipAudienceCheck = true },
			token: func(t *testing.T) string { return f.rs(t, map[string]any{"aud": "api://other"}) }},
		{name: "required claim all: matches", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "appid", Match: tokenauth.MatchAll, Values: []string{appID}}}
		}, token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "required claim all: other identity", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "appid", Match: tokenauth.MatchAll, Values: []string{appID}}}
		}, token: func(t *testing.T) string {
			return f.rs(t, map[string]any{"appid": "00000000-0000-0000-0000-000000000bad"})
		},
			wantKind: tokenauth.KindClaim, wantMsg: `claim "appid" lacks a required value`},
		{name: "required claim missing", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "appid", Values: []string{appID}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"appid": nil}) },
			wantKind: tokenauth.KindClaim, wantMsg: `required claim "appid" is missing`},
		{name: "required claim presence only", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "xms_mirid"}}
		}, token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "required claim all over an array: both present", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "roles", Match: tokenauth.MatchAll, Values: []string{"A", "B"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"roles": []string{"B", "A", "C"}}) }},
		{name: "required claim all over an array: one absent", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "roles", Match: tokenauth.MatchAll, Values: []string{"A", "B"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"roles": []string{"A"}}) }, wantKind: tokenauth.KindClaim},
		{name: "required claim any", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "roles", Match: tokenauth.MatchAny, Values: []string{"X", "A"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"roles": []string{"A"}}) }},
		{name: "required claim any: none", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "roles", Match: tokenauth.MatchAny, Values: []string{"X", "Y"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"roles": []string{"A"}}) },
			wantKind: tokenauth.KindClaim, wantMsg: `claim "roles" has none of the required values`},
		{name: "required claim with separator", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "scp", Match: tokenauth.MatchAll, Separator: " ", Values: []string{"read", "write"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"scp": "write read"}) }},
		{name: "required claim without separator does not split", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "scp", Values: []string{"read"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"scp": "write read"}) }, wantKind: tokenauth.KindClaim},
		{name: "required claim numeric", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "level", Values: []string{"12345678901234567890"}}}
		}, token: func(t *testing.T) string { return f.rs(t, map[string]any{"level": jsonNumber("12345678901234567890")}) }},
		{name: "required claim of a forged token is never evaluated", cfg: func(c *tokenauth.Config) {
			c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "appid", Values: []string{"nope"}}}
		}, token: func(t *testing.T) string {
			return testissuer.Sign(t, "RS256", f.other, map[string]any{"kid": "k1"}, f.claims(nil))
		}, wantKind: tokenauth.KindBadSignature},
		{name: "keys unavailable", cfg: func(c *tokenauth.Config) { c.KeySets = []tokenauth.KeySet{failingKeys{}} },
			token: func(t *testing.T) string { return f.rs(t, nil) }, wantKind: tokenauth.KindKeysUnavailable,
			wantMsg: "the signing keys are unavailable"},
		{name: "one set down, another has the key", cfg: func(c *tokenauth.Config) {
			c.KeySets = []tokenauth.KeySet{failingKeys{}, pubJWK}
		}, token: func(t *testing.T) string { return f.rs(t, nil) }},
		{name: "oversized", token: func(t *testing.T) string { return f.rs(t, map[string]any{"pad": string(make([]byte, 20000))}) },
			wantKind: tokenauth.KindMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tokenauth.New(f.cfg(tt.cfg))
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Validate(context.Background(), tt.token(t))
			if tt.wantKind == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if claims.TenantID != tid || claims.ObjectID == "" {
					t.Errorf("claims = %+v", claims)
				}
				return
			}
			var e *tokenauth.Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate error = %v, want *tokenauth.Error of kind %v", err, tt.wantKind)
			}
			if e.Kind != tt.wantKind {
				t.Errorf("kind = %v (%s), want %v", e.Kind, e.Message, tt.wantKind)
			}
			if tt.wantMsg != "" && e.Message != tt.wantMsg {
				t.Errorf("message = %q, want %q", e.Message, tt.wantMsg)
			}
			if claims != nil {
				t.Errorf("claims returned with an error")
			}
		})
	}
}

type jsonNumber string

func (n jsonNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

func sigOf(tok string) string {
	for i := len(tok) - 1; i >= 0; i-- {
		if tok[i] == '.' {
			return tok[i+1:]
		}
	}
	return ""
}

type failingKeys struct{}

func (failingKeys) VerificationKeys(context.Context, string) ([]jose.JSONWebKey, error) {
	return nil, errors.New("issuer unreachable")
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := tokenauth.New(tokenauth.Config{Algorithms: []string{"ES256", "none"}, ClockSkew: -1})
	want := "tokenauth: invalid config: no key sets: give at least one (an openid-config URL or static keys)\n" +
		"no issuers: list the accepted issuers, or set InsecureSkipIssuerCheck\n" +
		"no audiences: list the accepted audiences, or set InsecureSkipAudienceCheck\n" +
		"clock skew -1ns is negative\n" +
		`algorithm "ES256" is not supported (supported: RS256, RS384, RS512, PS256, PS384, PS512, HS256, HS384, HS512)` + "\n" +
		`algorithm "none" is not supported (supported: RS256, RS384, RS512, PS256, PS384, PS512, HS256, HS384, HS512)`
	if err == nil || err.Error() != want {
		t.Fatalf("New error:\n%v\nwant:\n%s", err, want)
	}
}

// countingKeys counts lookups, to see the cache skip signature work.
type countingKeys struct {
	tokenauth.StaticKeySet
	n atomic.Int64
}

func (c *countingKeys) VerificationKeys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	c.n.Add(1)
	return c.StaticKeySet.VerificationKeys(ctx, kid)
}

func TestCache(t *testing.T) {
	f := newFixture(t)
	now := t0.Add(time.Minute)
	keys := &countingKeys{StaticKeySet: tokenauth.StaticKeySet{{Key: &f.key.PublicKey, KeyID: "k1"}}}
	v, err := tokenauth.New(f.cfg(func(c *tokenauth.Config) {
		c.KeySets = []tokenauth.KeySet{keys}
		c.Now = func() time.Time { return now }
		c.CacheSize = 3
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := f.rs(t, nil)
	for i := 0; i < 3; i++ {
		if _, err := v.Validate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := keys.n.Load(); got != 1 {
		t.Errorf("key lookups = %d, want 1 (later calls hit the cache)", got)
	}
	if s := v.Stats(); s != (tokenauth.CacheStats{Hits: 2, Misses: 1}) {
		t.Errorf("stats = %+v", s)
	}
	// A hit still re-checks exp against the clock.
	now = t0.Add(time.Hour + time.Second)
	var e *tokenauth.Error
	if _, err := v.Validate(ctx, tok); !errors.As(err, &e) || e.Kind != tokenauth.KindExpired {
		t.Fatalf("cached token after exp: err = %v, want KindExpired", err)
	}
	// A forged token differing from a cached one is not a hit.
	now = t0.Add(time.Minute)
	forged := testissuer.Sign(t, "RS256", f.other, map[string]any{"kid": "k1"}, f.claims(nil))
	if _, err := v.Validate(ctx, forged); !errors.As(err, &e) || e.Kind != tokenauth.KindBadSignature {
		t.Fatalf("forged: err = %v", err)
	}
	// Bounded: many distinct tokens never push it over CacheSize; all still validate.
	for i := 0; i < 10; i++ {
		if _, err := v.Validate(ctx, f.rs(t, map[string]any{"n": i})); err != nil {
			t.Fatal(err)
		}
	}
	// A second validator with a stricter config does not reuse the first one's result.
	strict, err := tokenauth.New(f.cfg(func(c *tokenauth.Config) {
		c.Now = func() time.Time { return now }
		c.RequiredClaims = []tokenauth.ClaimRequirement{{Name: "appid", Values: []string{"someone-else"}}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Validate(ctx, tok); !errors.As(err, &e) || e.Kind != tokenauth.KindClaim {
		t.Fatalf("strict validator: err = %v, want KindClaim", err)
	}
}

func TestClaimsTyped(t *testing.T) {
	f := newFixture(t)
	v, err := tokenauth.New(f.cfg(nil))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Validate(context.Background(), f.rs(t, map[string]any{"roles": []string{"Data.Read", "Data.Write"}}))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s|%s|%v|%s|%s|%s|%v|%v|%v", c.Issuer, c.ClientID, c.Audience, c.TenantID, c.Version, c.Subject,
		c.Roles, c.Expiry.UTC().Format(time.RFC3339), c.HasRole("Data.Write"))
	want := "https://sts.windows.net/" + tid + "/|" + appID + "|[" + aud + "]|" + tid + "|1.0|9a2f6b7c-0000-4000-8000-00000000b0b0|[Data.Read Data.Write]|2026-11-23T11:00:00Z|true"
	if got != want {
		t.Errorf("claims:\n got %s\nwant %s", got, want)
	}
}
