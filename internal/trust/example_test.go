package trust_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wif-project/wif/internal/trust"
)

// The token service looks up the key that signed a client assertion from
// an external issuer that a federated credential names.
func Example() {
	ficIssuers := map[string]bool{"https://kubernetes.example": true}
	c := trust.New(trust.Options{
		HTTPClient: http.DefaultClient,
		// Only issuers some credential names are ever fetched.
		Allow: func(s trust.Source) bool { return ficIssuers[s.Issuer] },
	})
	defer c.Close()

	key, err := c.Key(context.Background(), trust.IssuerSource("https://kubernetes.example"), "kid-from-the-jws-header")
	var fe *trust.FetchError
	switch {
	case errors.As(err, &fe):
		fmt.Println("AADSTS90061: Request to External OIDC endpoint failed:", fe.URL)
	case errors.Is(err, trust.ErrUnknownKID):
		fmt.Println("AADSTS7000272:", err)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("verify the assertion with", key.KeyID)
	}
}

// The gateway reads keys from an openid-config URL whose issuer differs
// from the tokens' (Entra's v2 document, v1 tokens), and warms the cache at
// start-up, off the request path.
func Example_openIDConfig() {
	c := trust.New(trust.Options{MinRefetchInterval: 5 * time.Minute}) // as APIM: an unknown kid refetches at most every 5 min
	defer c.Close()
	src := trust.Source{DiscoveryURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"}
	if err := c.Refresh(context.Background(), src); err != nil {
		fmt.Println("keys not available yet:", err)
	}
}
