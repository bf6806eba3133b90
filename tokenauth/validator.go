package tokenauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Match says how a ClaimRequirement's values are matched.
type Match string

// The two matching modes of APIM's <claim match="...">.
const (
	// MatchAll requires every listed value to be present (APIM's default).
	MatchAll Match = "all"
	// MatchAny requires at least one listed value.
	MatchAny Match = "any"
)

// ClaimRequirement requires a claim. With no Values the claim must merely be
// present; otherwise its values (a string split on Separator when one is
// given, or an array's elements) must include all (MatchAll) or one
// (MatchAny) of Values. Comparison is exact and case-sensitive.
type ClaimRequirement struct {
	Name      string
	Match     Match
	Separator string
	Values    []string
}

// Config configures a Validator. The zero value of every field is the safe
// choice; options that weaken validation are named Insecure....
type Config struct {
	// KeySets are tried in order; a token is authentic if any key of any
	// set verifies it. At least one is required.
	KeySets []KeySet
	// Issuers lists the accepted iss values (exact match). Required unless
	// InsecureSkipIssuerCheck.
	Issuers []string
	// InsecureSkipIssuerCheck accepts any iss. Only safe when the key sets
	// belong to a single issuer (the keys then bind the issuer).
	InsecureSkipIssuerCheck bool
	// Audiences lists the accepted aud values; one of the token's must be
	// listed. Required unless InsecureSkipAudienceCheck.
	Audiences []string
	// InsecureSkipAudienceCheck accepts a token meant for any audience: a
	// token issued for another API is then accepted here.
	InsecureSkipAudienceCheck bool
	// RequiredClaims are checked after the signature, in order.
	RequiredClaims []ClaimRequirement
	// ClockSkew is the leeway for exp and nbf (default 0, as APIM).
	ClockSkew time.Duration
	// Algorithms is the allow-list of JWS algorithms (default RS256).
	// Supported: RS256, RS384, RS512, PS256, PS384, PS512, and HS256,
	// HS384, HS512 which verify only with symmetric ([]byte) keys; RSA
	// algorithms verify only with RSA public keys of 2048 bits or more.
	Algorithms []string
	// InsecureAllowMissingExpiration accepts tokens without exp (APIM's
	// require-expiration-time="false"). Such tokens are never cached.
	InsecureAllowMissingExpiration bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CacheSize bounds the cache of verified tokens (default 10000;
	// negative disables it).
	CacheSize int
	// MaxTokenBytes bounds the token's length (default 16 KiB).
	MaxTokenBytes int
}

// Validator checks bearer tokens. It is safe for concurrent use; its cache of
// verified tokens is private to it, so two Validators never share results.
type Validator struct {
	cfg   Config
	algs  map[string]bool
	now   func() time.Time
	cache *tokenCache

	hits, misses atomic.Uint64
}

var supportedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"HS256": true, "HS384": true, "HS512": true,
}

// New checks cfg and returns a Validator. Every problem in cfg is reported
// at once.
//
//	v, err := tokenauth.New(tokenauth.Config{
//		KeySets:   []tokenauth.KeySet{keys},
//		Issuers:   []string{"https://sts.windows.net/" + tenantID + "/"},
//		Audiences: []string{"api://provider-api"},
//	})
func New(cfg Config) (*Validator, error) {
	var errs []error
	if len(cfg.KeySets) == 0 {
		errs = append(errs, errors.New("no key sets: give at least one (an openid-config URL or static keys)"))
	}
	for i, ks := range cfg.KeySets {
		if ks == nil {
			errs = append(errs, fmt.Errorf("key set %d is nil", i))
		}
	}
	if len(cfg.Issuers) == 0 && !cfg.InsecureSkipIssuerCheck {
		errs = append(errs, errors.New("no issuers: list the accepted issuers, or set InsecureSkipIssuerCheck"))
	}
	if len(cfg.Audiences) == 0 && !cfg.InsecureSkipAudienceCheck {
		errs = append(errs, errors.New("no audiences: list the accepted audiences, or set InsecureSkipAudienceCheck"))
	}
	if cfg.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("clock skew %v is negative", cfg.ClockSkew))
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256"}
	}
	algs := map[string]bool{}
	for _, a := range cfg.Algorithms {
		if !supportedAlgs[a] {
			errs = append(errs, fmt.Errorf("algorithm %q is not supported (supported: RS256, RS384, RS512, PS256, PS384, PS512, HS256, HS384, HS512)", a))
		}
		algs[a] = true
	}
	for _, rc := range cfg.RequiredClaims {
		if rc.Name == "" {
			errs = append(errs, errors.New("required claim with an empty name"))
		}
		if rc.Match != "" && rc.Match != MatchAll && rc.Match != MatchAny {
			errs = append(errs, fmt.Errorf("required claim %q: match %q, want all or any", rc.Name, rc.Match))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tokenauth: invalid config: %w", err)
	}
	v := &Validator{cfg: cfg, algs: algs, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	if v.cfg.MaxTokenBytes <= 0 {
		v.cfg.MaxTokenBytes = 16 << 10
	}
	switch {
	case cfg.CacheSize == 0:
		v.cache = newTokenCache(10000)
	case cfg.CacheSize > 0:
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v, nil
}

// CacheStats counts lookups in the verified-token cache.
type CacheStats struct {
	Hits, Misses uint64
}

// Stats returns the cache's hit and miss counts since New.
func (v *Validator) Stats() CacheStats {
	return CacheStats{Hits: v.hits.Load(), Misses: v.misses.Load()}
}

type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// Validate checks token (the compact JWS, without any "Bearer " prefix) and
// returns its claims, or an *Error saying why it was refused.
//
// Order: structure and header, then the cheap claim checks (exp, nbf, iss,
// aud) so a token that would fail anyway never makes the key sets refetch,
// then the signature, then the required claims. Claims of a token whose
// signature is not yet verified are only ever used to refuse it.
func (v *Validator) Validate(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, newErr(KindMissing, "no token")
	}
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, newErr(KindMalformed, "token is %d bytes, over the %d-byte limit", len(token), v.cfg.MaxTokenBytes)
	}
	now := v.now()
	var key [32]byte
	if v.cache != nil {
		key = hashToken(token)
		if c, ok := v.cache.get(key); ok {
			if now.After(c.Expiry.Add(v.cfg.ClockSkew)) {
				v.cache.remove(key)
				return nil, newErr(KindExpired, "the token has expired")
			}
			v.hits.Add(1)
			return c, nil
		}
		v.misses.Add(1)
	}

	dot1 := strings.IndexByte(token, '.')
	dot2 := -1
	if dot1 >= 0 {
		if i := strings.IndexByte(token[dot1+1:], '.'); i >= 0 {
			dot2 = dot1 + 1 + i
		}
	}
	if dot1 < 0 || dot2 < 0 || strings.IndexByte(token[dot2+1:], '.') >= 0 {
		return nil, newErr(KindMalformed, "not a JWT: want three base64url parts separated by dots")
	}
	hb, err := base64.RawURLEncoding.DecodeString(token[:dot1])
	if err != nil {
		return nil, newErr(KindMalformed, "JWT header is not base64url")
	}
	var hdr jwsHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, newErr(KindMalformed, "JWT header is not a JSON object")
	}
	switch {
	case hdr.Alg == "" || strings.EqualFold(hdr.Alg, "none"):
		return nil, newErr(KindMalformed, "unsigned tokens (alg %q) are refused", clip(hdr.Alg))
	case len(hdr.Crit) > 0:
		return nil, newErr(KindMalformed, "tokens with critical header parameters (crit) are refused")
	case !v.algs[hdr.Alg]:
		return nil, newErr(KindMalformed, "algorithm %q is not allowed (allowed: %s)", clip(hdr.Alg), strings.Join(v.cfg.Algorithms, ", "))
	}
	pb, err := base64.RawURLEncoding.DecodeString(token[dot1+1 : dot2])
	if err != nil {
		return nil, newErr(KindMalformed, "JWT payload is not base64url")
	}
	raw := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return nil, newErr(KindMalformed, "JWT payload is not a JSON object")
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[dot2+1:])
	if err != nil || len(sig) == 0 {
		return nil, newErr(KindMalformed, "JWT signature is not base64url")
	}
	claims := NewClaims(raw)
	if err := v.checkTimesAndNames(claims, now); err != nil {
		return nil, err
	}
	if err := v.verify(ctx, hdr, token[:dot2], sig); err != nil {
		return nil, err
	}
	if err := v.checkRequired(claims); err != nil {
		return nil, err
	}
	if v.cache != nil && !claims.Expiry.IsZero() {
		v.cache.put(key, claims, now, v.cfg.ClockSkew)
	}
	return claims, nil
}

func (v *Validator) checkTimesAndNames(c *Claims, now time.Time) error {
	skew := v.cfg.ClockSkew
	if raw, present := c.Raw["exp"]; present {
		if c.Expiry.IsZero() {
			return newErr(KindMalformed, "exp %s is not a NumericDate", clip(fmt.Sprint(raw)))
		}
		if now.After(c.Expiry.Add(skew)) {
			return newErr(KindExpired, "the token has expired")
		}
	} else if !v.cfg.InsecureAllowMissingExpiration {
		return newErr(KindExpired, "the token has no expiration time (exp)")
	}
	if raw, present := c.Raw["nbf"]; present {
		if c.NotBefore.IsZero() {
			return newErr(KindMalformed, "nbf %s is not a NumericDate", clip(fmt.Sprint(raw)))
		}
		if now.Add(skew).Before(c.NotBefore) {
			return newErr(KindNotYetValid, "the token is not valid yet")
		}
	}
	if !v.cfg.InsecureSkipIssuerCheck && !slices.Contains(v.cfg.Issuers, c.Issuer) {
		return newErr(KindWrongIssuer, "issuer %q is not accepted", clip(c.Issuer))
	}
	if !v.cfg.InsecureSkipAudienceCheck {
		ok := false
		for _, a := range c.Audience {
			if slices.Contains(v.cfg.Audiences, a) {
				ok = true
				break
			}
		}
		if !ok {
			return newErr(KindWrongAudience, "audience %q is not accepted (accepted: %s)", clip(strings.Join(c.Audience, ",")), clip(strings.Join(v.cfg.Audiences, ", ")))
		}
	}
	return nil
}

func (v *Validator) verify(ctx context.Context, hdr jwsHeader, input string, sig []byte) error {
	var unavailable error
	tried := 0
	for _, ks := range v.cfg.KeySets {
		keys, err := ks.VerificationKeys(ctx, hdr.Kid)
		if err != nil {
			unavailable = err
			continue
		}
		for i := range keys {
			k := &keys[i]
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			if k.Algorithm != "" && k.Algorithm != hdr.Alg {
				continue
			}
			tried++
			if verifySignature(hdr.Alg, k.Key, input, sig) {
				return nil
			}
		}
	}
	switch {
	case tried == 0 && unavailable != nil:
		return &Error{Kind: KindKeysUnavailable, Message: "the signing keys are unavailable", Err: unavailable}
	case tried == 0 && hdr.Kid != "":
		return newErr(KindBadSignature, "signature validation failed: no trusted key with kid %q", clip(hdr.Kid))
	default:
		return newErr(KindBadSignature, "signature validation failed")
	}
}

func verifySignature(alg string, key any, input string, sig []byte) bool {
	var h crypto.Hash
	switch alg[2:] {
	case "256":
		h = crypto.SHA256
	case "384":
		h = crypto.SHA384
	case "512":
		h = crypto.SHA512
	default:
		return false
	}
	switch alg[:2] {
	case "HS":
		secret, ok := key.([]byte)
		if !ok || len(secret) == 0 {
			return false // never HMAC with a public key (key confusion)
		}
		m := hmac.New(h.New, secret)
		m.Write([]byte(input))
		return hmac.Equal(m.Sum(nil), sig)
	case "RS", "PS":
		pub, ok := key.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < minRSABits {
			return false
		}
		d := h.New()
		d.Write([]byte(input))
		digest := d.Sum(nil)
		if alg[0] == 'R' {
			return rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
		}
		return rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
	}
	return false
}

func (v *Validator) checkRequired(c *Claims) error {
	for _, rc := range v.cfg.RequiredClaims {
		got := c.Values(rc.Name, rc.Separator)
		if _, present := c.Raw[rc.Name]; !present || (len(rc.Values) > 0 && len(got) == 0) {
			return newErr(KindClaim, "required claim %q is missing", rc.Name)
		}
		if len(rc.Values) == 0 {
			continue
		}
		if rc.Match == MatchAny {
			if !slices.ContainsFunc(rc.Values, func(want string) bool { return slices.Contains(got, want) }) {
				return newErr(KindClaim, "claim %q has none of the required values", rc.Name)
			}
			continue
		}
		for _, want := range rc.Values {
			if !slices.Contains(got, want) {
				return newErr(KindClaim, "claim %q lacks a required value", rc.Name)
			}
		}
	}
	return nil
}

// clip bounds a value taken from a token before it goes into a message
// (messages reach clients and logs; values are %q-quoted, so control
// characters are escaped).
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
