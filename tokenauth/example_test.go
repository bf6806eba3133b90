package tokenauth_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"

	"github.com/wif-project/wif/tokenauth"
)

func ExampleValidator_Validate() {
	var pub *rsa.PublicKey // the token service's public key, e.g. from a JWKS
	v, err := tokenauth.New(tokenauth.Config{
		KeySets:   []tokenauth.KeySet{tokenauth.StaticKeySet{{Key: pub, KeyID: "k1"}}},
		Issuers:   []string{"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"},
		Audiences: []string{"api://provider-api"},
		RequiredClaims: []tokenauth.ClaimRequirement{
			{Name: "roles", Match: tokenauth.MatchAny, Values: []string{"Data.Read", "Data.Write"}},
		},
	})
	if err != nil {
		panic(err)
	}
	_, err = v.Validate(context.Background(), "not-a-token")
	var e *tokenauth.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, "-", e.Message)
	}
	// Output: malformed - not a JWT: want three base64url parts separated by dots
}

func ExampleMiddleware() {
	var v *tokenauth.Validator // from tokenauth.New
	data := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := tokenauth.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s of tenant %s\n", claims.ClientID, claims.TenantID)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /data", tokenauth.Middleware(v)(tokenauth.RequireRoles("Data.Read")(data)))
}

func ExampleStaticKeySet() {
	secret := []byte("a 32-byte (or longer) HMAC secret!")
	// HS256 must be allowed explicitly, and then verifies only with []byte keys.
	_, err := tokenauth.New(tokenauth.Config{
		KeySets:    []tokenauth.KeySet{tokenauth.StaticKeySet{{Key: secret}}},
		Algorithms: []string{"HS256"},
		Issuers:    []string{"https://issuer.example/"},
		Audiences:  []string{"api://example"},
	})
	fmt.Println(err)
	// Output: <nil>
}
