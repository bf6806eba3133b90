// Package tokenauth validates bearer tokens (JWS-signed JWT access tokens, as
// Microsoft Entra ID and wif issue them) and protects net/http handlers with
// them.
//
// A Validator is configured with where the keys come from (openid-config
// discovery URLs through Discovery, or a StaticKeySet), the accepted issuers
// and audiences, required claims, a clock skew and an algorithm allow-list
// (RS256 by default). Validate returns the token's Claims or an *Error whose
// Kind says why it was refused. Verified tokens are cached (keyed by their
// SHA-256, until exp) so a repeated token costs a map lookup.
//
// Security defaults: unsigned tokens (alg none), tokens with crit headers and
// algorithms outside the allow-list are refused; HMAC algorithms verify only
// with symmetric keys and RSA algorithms only with RSA keys of at least 2048
// bits, so a public key can never be used as an HMAC secret; keys are never
// taken from a token's own jku, x5u or jwk headers; options that weaken a
// check are named Insecure....
//
//	v, err := tokenauth.New(tokenauth.Config{
//		KeySets:   []tokenauth.KeySet{disc.KeySet("https://sts.example/" + tid + "/v2.0/.well-known/openid-configuration")},
//		Issuers:   []string{"https://sts.example/" + tid + "/v2.0"},
//		Audiences: []string{"api://provider-api"},
//	})
//	...
//	http.Handle("/data", tokenauth.Middleware(v)(tokenauth.RequireRoles("Data.Read")(data)))
package tokenauth
