package doctor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/stsclient"
	"github.com/wif-project/wif/internal/webhook"
)

// maxMetadataBytes bounds a discovery document or a JWKS.
const maxMetadataBytes = 1 << 20

// clockSkew is the token service's leeway on assertion times.
const clockSkew = 5 * time.Minute

// token is a JWT as read, before anything is verified.
type token struct {
	raw    string
	alg    string
	kid    string
	iss    string
	sub    string
	aud    []string
	iat    time.Time
	nbf    time.Time
	exp    time.Time
	claims map[string]any
}

// parseJWT reads a compact JWS's header and claims (nothing verified).
func parseJWT(raw string) (*token, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, errors.New("five segments: an encrypted token (JWE), not a signed one")
		}
		return nil, fmt.Errorf("%d segment(s), not the three of a JWT (header.claims.signature)", len(parts))
	}
	seg := func(i int, what string, v any) error {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return fmt.Errorf("the %s is not base64url: %v", what, err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("the %s is not a JSON object: %v", what, err)
		}
		return nil
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := seg(0, "header", &hdr); err != nil {
		return nil, err
	}
	t := &token{raw: raw, alg: hdr.Alg, kid: hdr.Kid}
	if err := seg(1, "claims segment", &t.claims); err != nil {
		return nil, err
	}
	str := func(k string) string { s, _ := t.claims[k].(string); return s }
	num := func(k string) time.Time {
		if f, ok := t.claims[k].(float64); ok {
			return time.Unix(int64(f), 0)
		}
		return time.Time{}
	}
	t.iss, t.sub = str("iss"), str("sub")
	switch a := t.claims["aud"].(type) {
	case string:
		t.aud = []string{a}
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok {
				t.aud = append(t.aud, s)
			}
		}
	}
	t.iat, t.nbf, t.exp = num("iat"), num("nbf"), num("exp")
	return t, nil
}

func checkTokenFile(r *Report, cfg Config, w *workload) *token {
	const s = SectionTokenFile
	if w.tokenFile == "" {
		r.add(s, "readable", Skip, "AZURE_FEDERATED_TOKEN_FILE is not set", "")
		return nil
	}
	now := cfg.Now()
	st, err := os.Stat(w.tokenFile)
	if err != nil {
		fix := "is the path right? In a pod the webhook mounts it at " + webhook.TokenFilePath + "; after `wif dev`, is wif dev running?"
		if errors.Is(err, os.ErrPermission) {
			fix = "the workload's user cannot read it: in a pod set securityContext.fsGroup (the webhook's token is mode 0644 by default)"
		}
		r.add(s, "readable", Fail, fmt.Sprintf("%s: %s", w.tokenFile, errText(err)), fix)
		return nil
	}
	raw, err := stsclient.ReadAssertion(w.tokenFile)
	if err != nil {
		var ae *stsclient.AssertionError
		msg := err.Error()
		if errors.As(err, &ae) {
			msg = errText(ae.Err)
		}
		r.add(s, "readable", Fail, fmt.Sprintf("%s: %s", w.tokenFile, msg), "the workload's user must be able to read it (in a pod: securityContext.fsGroup)")
		return nil
	}
	age := now.Sub(st.ModTime())
	r.add(s, "readable", Pass, fmt.Sprintf("%s (%d bytes, written %s ago)", w.tokenFile, len(raw), human(age)), "")
	t, err := parseJWT(raw)
	if err != nil {
		r.add(s, "a JWT", Fail, err.Error(), "the file must hold the platform's token itself (a Kubernetes projected service-account token, a CI OIDC token), nothing else")
		return nil
	}
	r.add(s, "a JWT", Pass, fmt.Sprintf("iss %q, sub %q", t.iss, t.sub), "")
	switch t.alg {
	case "RS256":
	case "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		r.add(s, "algorithm", Warn, fmt.Sprintf("alg %q: the token service accepts it only where the tenant's trusted issuer (or its operator) allows it for this issuer (RS256 otherwise, as Entra ID)", t.alg),
			"if the exchange fails with AADSTS50027, ask a tenant admin for wif issuer-trust create --issuer "+clip(t.iss)+" --algorithms "+t.alg+" (or the operator for wif serve --issuer-algorithms "+clip(t.iss)+"="+t.alg+")")
	default:
		r.add(s, "algorithm", Fail, fmt.Sprintf("alg %q: not a signature algorithm the token service accepts", t.alg), "have the issuer sign with RS256 (Kubernetes does by default)")
	}
	if t.alg == "RS256" {
		r.add(s, "algorithm", Pass, "RS256, kid "+quoteOrNone(t.kid), "")
	}
	switch {
	case len(t.aud) == 0:
		r.add(s, "audience", Fail, "no aud claim: the token service refuses it (AADSTS700212)", "request the token with audience api://AzureADTokenExchange")
	case slices.Contains(t.aud, directory.DefaultAudience):
		r.add(s, "audience", Pass, strings.Join(t.aud, ", "), "")
	default:
		r.add(s, "audience", Warn, fmt.Sprintf("aud %s, not %s: a credential must list exactly that audience", strings.Join(t.aud, ", "), directory.DefaultAudience),
			"unless a credential was made for it, request the token with audience api://AzureADTokenExchange (the webhook's azure.workload.identity/service-account-token-audience)")
	}
	switch {
	case t.exp.IsZero():
		r.add(s, "lifetime", Fail, "no exp claim: the token service refuses a token that never expires", "use the platform's short-lived token")
	case now.After(t.exp.Add(clockSkew)):
		r.add(s, "lifetime", Fail, fmt.Sprintf("expired %s ago (exp %s)", human(now.Sub(t.exp)), t.exp.UTC().Format(time.RFC3339)),
			"something must keep the file fresh: the kubelet does for a projected token, wif dev for .wif/token — is it running? A copied token is not refreshed")
	case !t.nbf.IsZero() && t.nbf.After(now.Add(clockSkew)):
		r.add(s, "lifetime", Fail, fmt.Sprintf("not valid for another %s (nbf %s): this machine's clock is behind the issuer's", human(t.nbf.Sub(now)), t.nbf.UTC().Format(time.RFC3339)),
			"synchronise the clock (NTP)")
	default:
		r.add(s, "lifetime", Pass, fmt.Sprintf("expires in %s (exp %s)", human(t.exp.Sub(now)), t.exp.UTC().Format(time.RFC3339)), "")
	}
	if !t.iat.IsZero() && !t.exp.IsZero() && t.exp.After(t.iat) {
		life := t.exp.Sub(t.iat)
		if age > life {
			r.add(s, "refreshed", Fail, fmt.Sprintf("written %s ago, but its tokens live %s: nothing is refreshing the file", human(age), human(life)),
				"the kubelet rewrites a projected token at 80% of its lifetime; a token copied into a file or a secret is never refreshed — mount the projected volume instead")
		} else {
			r.add(s, "refreshed", Pass, fmt.Sprintf("written %s ago; its tokens live %s", human(age), human(life)), "")
		}
	}
	return t
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", s)
}

// checkIssuer checks the token's issuer as the workload sees it: the
// discovery document names exactly the token's iss, and its keys hold the
// token's kid and verify its signature.
//
// strict is for a resource's view (wif token decode --check): a document
// that cannot be fetched means the token cannot be validated, a failure;
// from a workload it is a warning, as the token service fetches with its
// own network.
func checkIssuer(ctx context.Context, r *Report, cfg Config, c *http.Client, t *token, strict bool) {
	const s = SectionIssuer
	if t == nil || t.iss == "" {
		r.add(s, "discovery", Skip, "no token issuer to check", "")
		return
	}
	if !strings.HasPrefix(t.iss, "https://") {
		r.add(s, "discovery", Fail, fmt.Sprintf("iss %q is not https: the token service fetches keys over https only", clip(t.iss)), "configure the platform's issuer with an https URL")
		return
	}
	url := strings.TrimSuffix(t.iss, "/") + "/.well-known/openid-configuration"
	resp, body, err := get(ctx, c, url, maxMetadataBytes)
	unreachable := func(detail string) {
		if strict {
			r.add(s, "discovery", Fail, detail+": the token cannot be validated from here", "check the issuer URL and the trust (--ca-file, SSL_CERT_FILE)")
			return
		}
		r.add(s, "discovery", Warn, detail+" — the token service fetches it with its own network and trust, so this alone need not break the exchange",
			"if the exchange fails with AADSTS90061 or 7000272, make "+url+" reachable from the token service (for a private cluster: wif serve --issuer-ca-file, or a published issuer)")
	}
	if err != nil {
		unreachable(fmt.Sprintf("cannot fetch %s from here: %v", url, err))
		return
	}
	if resp.StatusCode != http.StatusOK {
		unreachable(fmt.Sprintf("%s answered %d from here", url, resp.StatusCode))
		return
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &disc); err != nil || disc.JWKSURI == "" {
		r.add(s, "discovery", Fail, url+" is not an OpenID discovery document (no jwks_uri)", "the issuer must serve its discovery document there")
		return
	}
	if disc.Issuer != t.iss {
		what := "differs"
		if strings.TrimSuffix(disc.Issuer, "/") == strings.TrimSuffix(t.iss, "/") {
			what = "differs by a trailing '/'"
		}
		r.add(s, "discovery", Fail, fmt.Sprintf("the discovery document names issuer %q, the token has %q (%s): OIDC verifiers refuse the pair", disc.Issuer, t.iss, what),
			"make the issuer's configured URL and its discovery document agree exactly (kube-apiserver --service-account-issuer)")
		return
	}
	r.add(s, "discovery", Pass, fmt.Sprintf("%s names issuer %q", url, disc.Issuer), "")
	resp, body, err = get(ctx, c, disc.JWKSURI, maxMetadataBytes)
	if err != nil || resp.StatusCode != http.StatusOK {
		detail := fmt.Sprintf("%v", err)
		if err == nil {
			detail = fmt.Sprintf("answered %d", resp.StatusCode)
		}
		st, fix := Warn, "the token service fetches them itself; see the exchange check"
		if strict {
			st, fix = Fail, "check the issuer's jwks_uri and the trust (--ca-file, SSL_CERT_FILE)"
		}
		r.add(s, "keys", st, fmt.Sprintf("cannot fetch the keys %s from here: %s", disc.JWKSURI, detail), fix)
		return
	}
	var set gojose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		r.add(s, "keys", Fail, disc.JWKSURI+" is not a JWK set: "+err.Error(), "the issuer's jwks_uri must serve its public keys")
		return
	}
	var kids []string
	var key *gojose.JSONWebKey
	for i, k := range set.Keys {
		kids = append(kids, k.KeyID)
		if k.KeyID == t.kid {
			key = &set.Keys[i]
		}
	}
	if key == nil {
		r.add(s, "keys", Fail, fmt.Sprintf("kid %s is not among the issuer's keys (%s): it cannot be validated (the token service answers AADSTS7000272)", quoteOrNone(t.kid), strings.Join(kids, ", ")),
			"the token was signed with a key the issuer no longer (or never) published: get a fresh token; after a key rotation, keep the old key published until old tokens expire")
		return
	}
	r.add(s, "keys", Pass, fmt.Sprintf("kid %q found among %d key(s)", t.kid, len(set.Keys)), "")
	jws, err := gojose.ParseSignedCompact(t.raw, []gojose.SignatureAlgorithm{gojose.RS256, gojose.RS384, gojose.RS512, gojose.PS256, gojose.PS384, gojose.PS512, gojose.ES256, gojose.ES384, gojose.ES512, gojose.EdDSA})
	if err == nil {
		_, err = jws.Verify(key)
	}
	if err != nil {
		r.add(s, "signature", Fail, "the signature does not verify with the issuer's key "+quoteOrNone(t.kid)+": the token was altered or signed by someone else", "use the token the platform wrote, unmodified")
		return
	}
	r.add(s, "signature", Pass, "verifies with kid "+quoteOrNone(t.kid), "")
}
