package sts

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// assertion is a parsed, not yet verified, client assertion.
type assertion struct {
	jws *jose.JSONWebSignature
	kid string
	alg string
	// claims are the registered claims this service checks.
	claims assertionClaims
	// all holds every claim, for claimsMatchingExpression.
	all map[string]any
}

type assertionClaims struct {
	Issuer    string
	Subject   string
	Audience  []string
	JTI       string
	IssuedAt  *time.Time
	NotBefore *time.Time
	Expiry    *time.Time
}

// parseAssertion checks the assertion's form and header (spec/sts.md §4,
// first bullet) and decodes its claims. It verifies nothing: the signature
// is checked once the credential that trusts the issuer is found.
// assertionAlgorithms are the algorithms an assertion may be parsed with;
// which of them an issuer may use is decided once its iss is known (RS256
// only unless the operator allows more: Config.IssuerAlgorithms).
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

func validAssertionAlgorithm(a string) bool {
	return slices.Contains(assertionAlgorithms, jose.SignatureAlgorithm(a))
}

// algorithmsOf lists the algorithms issuer iss may sign with.
func (s *Service) algorithmsOf(iss string) []string {
	if algs, ok := s.cfg.IssuerAlgorithms[iss]; ok {
		return algs
	}
	return rs256Only
}

// rs256Only is the default algorithm list, shared so the token endpoint
// allocates none per exchange; never modified.
var rs256Only = []string{string(jose.RS256)}

func parseAssertion(raw string) (*assertion, *Error) {
	if len(raw) > maxAssertionSize {
		return nil, errMalformedJWT(fmt.Sprintf("The assertion is %d bytes; the limit is %d.", len(raw), maxAssertionSize))
	}
	if n := strings.Count(raw, "."); n != 2 {
		return nil, errMalformedJWT(fmt.Sprintf("The assertion must be a compact JWS of three base64url parts separated by '.', it has %d part(s).", n+1)).
			withHint("send the content of the platform token file (a JWT), not a path or an access token")
	}
	jws, err := jose.ParseSignedCompact(raw, assertionAlgorithms)
	if err != nil {
		// Off the hot path: decode the header ourselves to say precisely
		// what is wrong with it.
		return nil, headerError(raw[:strings.IndexByte(raw, '.')], err)
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" {
		return nil, errMalformedJWT("The assertion header has no kid.")
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, errMalformedJWT("The assertion header has critical extensions (crit), which are not supported.")
	}
	a := &assertion{jws: jws, kid: h.KeyID, alg: h.Algorithm}
	if err := a.decodeClaims(jws.UnsafePayloadWithoutVerification()); err != nil {
		return nil, errMalformedJWT(err.Error())
	}
	return a, nil
}

// headerError explains why go-jose refused an assertion, from its header.
func headerError(header string, cause error) *Error {
	hdrBytes, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return errMalformedJWT("The assertion header is not base64url.")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hdrBytes, &hdr); err != nil {
		return errMalformedJWT("The assertion header is not a JSON object.")
	}
	if !slices.Contains(assertionAlgorithms, jose.SignatureAlgorithm(hdr.Alg)) {
		return errMalformedJWT(fmt.Sprintf("The assertion's alg is %q; only RS256 is accepted.", hdr.Alg))
	}
	return errMalformedJWT("The assertion could not be parsed as a JWS.").withCause(cause)
}

func (a *assertion) decodeClaims(payload []byte) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&a.all); err != nil || a.all == nil {
		return fmt.Errorf("The assertion's payload is not a JSON object.")
	}
	c := &a.claims
	var err error
	if c.Issuer, err = stringClaim(a.all, "iss"); err != nil {
		return err
	}
	if c.Subject, err = stringClaim(a.all, "sub"); err != nil {
		return err
	}
	if c.JTI, err = stringClaim(a.all, "jti"); err != nil {
		return err
	}
	switch v := a.all["aud"].(type) {
	case nil:
	case string:
		c.Audience = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("The assertion's aud claim must be a string or an array of strings.")
			}
			c.Audience = append(c.Audience, s)
		}
	default:
		return fmt.Errorf("The assertion's aud claim must be a string or an array of strings.")
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"iat", &c.IssuedAt}, {"nbf", &c.NotBefore}, {"exp", &c.Expiry}} {
		t, err := numericDate(a.all, f.name)
		if err != nil {
			return err
		}
		*f.dst = t
	}
	return nil
}

func stringClaim(m map[string]any, name string) (string, error) {
	switch v := m[name].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("The assertion's %s claim must be a string.", name)
	}
}

func numericDate(m map[string]any, name string) (*time.Time, error) {
	v, ok := m[name]
	if !ok || v == nil {
		return nil, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return nil, fmt.Errorf("The assertion's %s claim must be a number of seconds since 1970.", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return nil, fmt.Errorf("The assertion's %s claim is not a valid time.", name)
	}
	t := time.Unix(int64(f), 0).UTC()
	return &t, nil
}

// hasAudience reports whether aud is among the assertion's audiences.
func (c *assertionClaims) hasAudience(aud string) bool {
	for _, a := range c.Audience {
		if a == aud {
			return true
		}
	}
	return false
}
