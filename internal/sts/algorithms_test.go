package sts_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// spireIssuer is an OIDC discovery provider shaped like SPIRE's: its keys
// are EC P-256 and its JWT-SVIDs ES256, with a spiffe:// subject.
type spireIssuer struct {
	*httptest.Server
	key *ecdsa.PrivateKey
	kid string
}

func startSPIRE(t *testing.T) *spireIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &spireIssuer{key: key, kid: "spire-key-1"}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": s.URL, "jwks_uri": s.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256", "ES256", "ES384"},
				"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"}})
		case "/keys":
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: s.kid, Algorithm: "ES256", Use: "sig"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *spireIssuer) svid(t *testing.T, spiffeID string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{"iss": s.URL, "sub": spiffeID, "aud": []string{directory.DefaultAudience},
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// TestSPIREES256: a SPIRE-shaped ES256 JWT-SVID is refused by default with
// a description naming its algorithm and a hint naming the operator's
// per-issuer switch, and accepted once that issuer may sign with ES256;
// the switch is the issuer's alone.
func TestSPIREES256(t *testing.T) {
	spire := startSPIRE(t)
	const spiffeID = "spiffe://example.org/ns/payments/sa/api"
	run := func(t *testing.T, opts ...wiftest.Option) wiftest.TokenResponse {
		env := wiftest.Start(t, append(opts, wiftest.WithIssuerHTTPClient(spire.Client()))...)
		mi := env.CreateManagedIdentity(t, "payments")
		env.CreateResourceApp(t, "api://ledger", 2)
		env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "spire", spire.URL, spiffeID, directory.DefaultAudience)
		env.Changed(t)
		return env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, spire.svid(t, spiffeID), "api://ledger/.default"))
	}
	t.Run("refused by default", func(t *testing.T) {
		r := run(t)
		desc, _ := r.Body["error_description"].(string)
		if r.Status != 400 || !strings.Contains(desc, `The assertion's alg is "ES256"; it is not accepted from this issuer.`) ||
			!strings.Contains(desc, "wif serve --issuer-algorithms ISSUER=ES256") {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
	t.Run("accepted once allowed", func(t *testing.T) {
		if r := run(t, wiftest.WithIssuerAlgorithms(map[string][]string{spire.URL: {"RS256", "ES256"}})); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
	t.Run("another issuer's switch does not apply", func(t *testing.T) {
		if r := run(t, wiftest.WithIssuerAlgorithms(map[string][]string{"https://other.example": {"ES256"}})); r.Status != 400 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
}
