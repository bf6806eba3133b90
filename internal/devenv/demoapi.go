package devenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/tokenauth"
)

// DemoAPIPath is the demo provider API's one resource.
const DemoAPIPath = "/data"

// DemoAPIConfig configures the demo provider API.
type DemoAPIConfig struct {
	// TenantID and AuthorityHost (no trailing '/') make the accepted
	// issuers: the v2 form {host}/{tid}/v2.0 and the v1 form {host}/{tid}/.
	TenantID      string
	AuthorityHost string
	// ResourceAppID is the API's appId; v2 tokens carry it as aud, v1 tokens
	// the identifier URI.
	ResourceAppID string
	// JWKS returns the token service's key set document; read on an unknown
	// kid, so key rotation is picked up.
	JWKS func() []byte
}

// NewDemoAPI returns the demo provider API: GET /data answers 200 with a
// small JSON document to callers whose access token (issued by the token
// service for api://provider-api) carries the role Data.Read, 401 without a
// valid token and 403 without the role — validated with the tokenauth
// package, as a real Go API would.
func NewDemoAPI(cfg DemoAPIConfig) (http.Handler, error) {
	if cfg.JWKS == nil {
		return nil, errors.New("demo API: no key source")
	}
	v, err := tokenauth.New(tokenauth.Config{
		KeySets:   []tokenauth.KeySet{&jwksKeySet{fetch: cfg.JWKS}},
		Issuers:   []string{cfg.AuthorityHost + "/" + cfg.TenantID + "/v2.0", cfg.AuthorityHost + "/" + cfg.TenantID + "/"},
		Audiences: []string{cfg.ResourceAppID, ResourceURI},
		RequiredClaims: []tokenauth.ClaimRequirement{
			{Name: "tid", Match: tokenauth.MatchAll, Values: []string{cfg.TenantID}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("demo API validator: %w", err)
	}
	data := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := tokenauth.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"message": "hello from " + ResourceDisplayName,
			"caller":  map[string]any{"oid": c.ObjectID, "clientId": c.ClientID, "roles": c.Roles, "tid": c.TenantID},
		})
	})
	mux := http.NewServeMux()
	mux.Handle("GET "+DemoAPIPath, tokenauth.Middleware(v)(tokenauth.RequireRoles(ResourceRole)(data)))
	return mux, nil
}

// jwksKeySet reads keys from a JWKS document supplied in-process, parsing
// it again only when a kid is unknown.
type jwksKeySet struct {
	fetch func() []byte
	mu    sync.Mutex
	set   jose.JSONWebKeySet
}

func (k *jwksKeySet) VerificationKeys(_ context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if keys := k.match(kid); len(keys) > 0 {
		return keys, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(k.fetch(), &set); err != nil {
		return nil, fmt.Errorf("token service key set: %w", err)
	}
	k.set = set
	return k.match(kid), nil
}

func (k *jwksKeySet) match(kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range k.set.Keys {
		if kid == "" || key.KeyID == kid {
			// x5c certificates are not needed to verify; drop them so a
			// key is only its public key.
			key.Certificates = nil
			if strings.EqualFold(key.Use, "sig") || key.Use == "" {
				out = append(out, key)
			}
		}
	}
	return out
}
