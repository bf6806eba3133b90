package directory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// KeySource says how the token service obtains a trusted issuer's signing
// keys.
type KeySource string

// The key sources of a trusted issuer.
const (
	// KeySourceDiscovery fetches {issuer}/.well-known/openid-configuration
	// and its jwks_uri, as for an issuer with no object.
	KeySourceDiscovery KeySource = "discovery"
	// KeySourceJWKS uses a key set uploaded by an admin: for issuers the
	// token service cannot reach (private and air-gapped clusters).
	KeySourceJWKS KeySource = "jwks"
	// KeySourcePushed uses a key set an agent keeps current (wif cluster
	// sync); keys a push removes keep verifying for KeyOverlap.
	KeySourcePushed KeySource = "pushed"
)

// Limits of trusted issuers and issuer sets (ours).
const (
	MaxJWKSBytes          = 64 << 10
	MaxCABundleBytes      = 64 << 10
	MaxIssuerSetMembers   = 100
	MaxRetiredKeys        = 20
	MaxTokenLifetimeLimit = 25 * time.Hour
	// DefaultKeyOverlap is how long keys removed by a push keep verifying.
	DefaultKeyOverlap = time.Hour
	MaxKeyOverlap     = 7 * 24 * time.Hour
	// IssuerSetPrefix begins a federated credential's issuer that names an
	// issuer set of its tenant instead of one issuer URL.
	IssuerSetPrefix = "urn:wif:issuer-set:"
)

// SignatureAlgorithms are the JWS algorithms a trusted issuer may allow;
// RS256 alone is the default, as in Entra.
var SignatureAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// RetiredKey is a key that a push removed, still accepted until Until.
type RetiredKey struct {
	// Key is the JSON Web Key as it was pushed.
	Key   json.RawMessage `json:"key"`
	Until time.Time       `json:"until"`
}

// TrustedIssuer is a tenant's settings for one issuer of client assertions:
// where its keys come from and what its tokens may be. Federated
// credentials of the tenant name the issuer by URL as always; an issuer
// with no TrustedIssuer is fetched by discovery and accepts RS256 only.
// Settings are per tenant: keys uploaded in one tenant never verify
// assertions presented in another.
type TrustedIssuer struct {
	TenantID string `json:"tenantId"`
	// Name is unique per tenant (case-insensitively) and immutable.
	Name string `json:"name"`
	// Issuer is the iss of the issuer's tokens, exactly; unique per tenant.
	Issuer    string    `json:"issuer"`
	KeySource KeySource `json:"keySource"`
	// CABundle (discovery) is PEM certificates trusted, besides the
	// system roots, for the issuer's discovery and key URLs.
	CABundle string `json:"caBundle,omitempty"`
	// JWKS (jwks, pushed) is the issuer's JSON Web Key Set document.
	JWKS string `json:"jwks,omitempty"`
	// KeysUpdatedAt is when JWKS was last uploaded or pushed.
	KeysUpdatedAt time.Time `json:"keysUpdatedAt,omitzero"`
	// RetiredKeys (pushed) are keys that pushes removed, still accepted
	// until their time passes.
	RetiredKeys []RetiredKey `json:"retiredKeys,omitempty"`
	// KeyOverlapSeconds (pushed) is how long removed keys stay accepted;
	// 0 means DefaultKeyOverlap.
	KeyOverlapSeconds int64 `json:"keyOverlapSeconds,omitempty"`
	// PushClientID (pushed) is the client id of the identity allowed to
	// push keys (the cluster's sync agent); tenant admins always may.
	PushClientID string `json:"pushClientId,omitempty"`
	// Algorithms the issuer may sign with; empty means RS256 only.
	Algorithms []string `json:"algorithms,omitempty"`
	// MaxTokenLifetimeSeconds, when positive, bounds an assertion's
	// lifetime (exp - iat) below the 25 h every assertion obeys.
	MaxTokenLifetimeSeconds int64 `json:"maxTokenLifetimeSeconds,omitempty"`
	// RequireKeyUse refuses keys that do not say "use": "sig".
	RequireKeyUse bool `json:"requireKeyUse,omitempty"`
	// AllowPrivateAddresses (discovery) lets fetches reach loopback,
	// link-local and private addresses; only the operator may set it.
	AllowPrivateAddresses bool   `json:"allowPrivateAddresses,omitempty"`
	Description           string `json:"description,omitempty"`
	Meta
}

// AllowedAlgorithms is the issuer's algorithms, RS256 when none are set.
func (t TrustedIssuer) AllowedAlgorithms() []string {
	if len(t.Algorithms) == 0 {
		return []string{"RS256"}
	}
	return t.Algorithms
}

// KeyOverlap is how long keys removed by a push stay accepted.
func (t TrustedIssuer) KeyOverlap() time.Duration {
	if t.KeyOverlapSeconds <= 0 {
		return DefaultKeyOverlap
	}
	return time.Duration(t.KeyOverlapSeconds) * time.Second
}

// MaxTokenLifetime is the bound on assertion lifetime (0: none of its own).
func (t TrustedIssuer) MaxTokenLifetime() time.Duration {
	return time.Duration(t.MaxTokenLifetimeSeconds) * time.Second
}

// IssuerSet names several issuers, so that one federated credential (whose
// issuer is IssuerSetPrefix+Name) covers the same subject on many clusters.
type IssuerSet struct {
	TenantID string `json:"tenantId"`
	// Name is unique per tenant (case-insensitively) and immutable.
	Name        string   `json:"name"`
	Issuers     []string `json:"issuers"`
	Description string   `json:"description,omitempty"`
	Meta
}

// IssuerSetName returns the set a credential's issuer names, if it names
// one.
func IssuerSetName(issuer string) (string, bool) {
	return strings.CutPrefix(issuer, IssuerSetPrefix)
}

// Validate checks a trusted issuer on its own (its key set's keys are
// checked further by the token service, which parses them).
func (t TrustedIssuer) Validate() error {
	var c checker
	c.guid("tenantId", t.TenantID)
	c.objectName("name", t.Name)
	c.issuerURL(t.Issuer)
	switch t.KeySource {
	case KeySourceDiscovery:
		if t.JWKS != "" {
			c.fail("jwks", "", "must be empty when keySource is %q (the keys are fetched); use keySource %q to upload keys", KeySourceDiscovery, KeySourceJWKS)
		}
	case KeySourceJWKS, KeySourcePushed:
		if t.KeySource == KeySourceJWKS && c.required("jwks", t.JWKS) || t.KeySource == KeySourcePushed && t.JWKS != "" {
			c.keySet("jwks", t.JWKS)
		}
		if t.CABundle != "" {
			c.fail("caBundle", "", "applies to keySource %q only: keys of a %q issuer are not fetched", KeySourceDiscovery, t.KeySource)
		}
		if t.AllowPrivateAddresses {
			c.fail("allowPrivateAddresses", "true", "applies to keySource %q only: keys of a %q issuer are not fetched", KeySourceDiscovery, t.KeySource)
		}
	default:
		c.fail("keySource", string(t.KeySource), "must be %q, %q or %q", KeySourceDiscovery, KeySourceJWKS, KeySourcePushed)
	}
	if t.KeySource != KeySourcePushed {
		if len(t.RetiredKeys) > 0 {
			c.fail("retiredKeys", "", "apply to keySource %q only", KeySourcePushed)
		}
		if t.PushClientID != "" {
			c.fail("pushClientId", t.PushClientID, "applies to keySource %q only", KeySourcePushed)
		}
	} else if t.PushClientID != "" {
		c.guid("pushClientId", t.PushClientID)
	}
	if len(t.CABundle) > MaxCABundleBytes {
		c.fail("caBundle", "", "is %d bytes; the limit is %d", len(t.CABundle), MaxCABundleBytes)
	} else if t.CABundle != "" && !strings.Contains(t.CABundle, "-----BEGIN CERTIFICATE-----") {
		c.fail("caBundle", "", "must be PEM certificates (-----BEGIN CERTIFICATE-----)")
	}
	if len(t.Algorithms) > len(SignatureAlgorithms) {
		c.fail("algorithms", strings.Join(t.Algorithms, ","), "lists more than the %d algorithms there are", len(SignatureAlgorithms))
	}
	for i, a := range t.Algorithms {
		if !slices.Contains(SignatureAlgorithms, a) {
			c.fail(fmt.Sprintf("algorithms[%d]", i), a, "must be one of %s (asymmetric signatures only; names are case-sensitive)", strings.Join(SignatureAlgorithms, ", "))
		} else if slices.Index(t.Algorithms, a) != i {
			c.fail(fmt.Sprintf("algorithms[%d]", i), a, "is listed twice")
		}
	}
	if t.MaxTokenLifetimeSeconds < 0 || time.Duration(t.MaxTokenLifetimeSeconds)*time.Second > MaxTokenLifetimeLimit {
		c.fail("maxTokenLifetimeSeconds", fmt.Sprint(t.MaxTokenLifetimeSeconds), "must be between 0 (no bound of its own) and %d (25 h, every assertion's bound)", int64(MaxTokenLifetimeLimit/time.Second))
	}
	if t.KeyOverlapSeconds < 0 || time.Duration(t.KeyOverlapSeconds)*time.Second > MaxKeyOverlap {
		c.fail("keyOverlapSeconds", fmt.Sprint(t.KeyOverlapSeconds), "must be between 0 (the default, %s) and %d (7 days)", DefaultKeyOverlap, int64(MaxKeyOverlap/time.Second))
	}
	if len(t.RetiredKeys) > MaxRetiredKeys {
		c.fail("retiredKeys", "", "holds %d keys; the limit is %d", len(t.RetiredKeys), MaxRetiredKeys)
	}
	for i, k := range t.RetiredKeys {
		if !json.Valid(k.Key) || len(k.Key) == 0 || k.Key[0] != '{' {
			c.fail(fmt.Sprintf("retiredKeys[%d].key", i), "", "must be a JSON Web Key object")
		}
	}
	c.maxLen("description", t.Description, MaxCredentialFieldLen)
	return c.err()
}

// Validate checks an issuer set.
func (s IssuerSet) Validate() error {
	var c checker
	c.guid("tenantId", s.TenantID)
	c.objectName("name", s.Name)
	switch n := len(s.Issuers); {
	case n == 0:
		c.fail("issuers", "", "must name at least one issuer")
	case n > MaxIssuerSetMembers:
		c.fail("issuers", "", "names %d issuers; the limit is %d", n, MaxIssuerSetMembers)
	}
	for i, iss := range s.Issuers {
		before := len(c.errs)
		c.issuerURL(iss)
		for _, e := range c.errs[before:] {
			e.Field = fmt.Sprintf("issuers[%d]", i)
		}
		if slices.Index(s.Issuers, iss) != i {
			c.fail(fmt.Sprintf("issuers[%d]", i), iss, "is listed twice")
		}
	}
	c.maxLen("description", s.Description, MaxCredentialFieldLen)
	return c.err()
}

// objectName checks the name of a trusted issuer or issuer set: the rules
// of federated credential names.
func (c *checker) objectName(field, name string) {
	if n := utf8.RuneCountInString(name); n < MinCredentialNameLen || n > MaxCredentialNameLen {
		c.fail(field, name, "must be %d to %d characters (has %d)", MinCredentialNameLen, MaxCredentialNameLen, n)
	} else if !credNameRE.MatchString(name) {
		c.fail(field, name, "may hold only letters, digits, '-' and '_', and must start with a letter or digit")
	}
}

// issuerURL checks an issuer URL as a credential's issuer is checked.
func (c *checker) issuerURL(iss string) {
	before := len(c.errs)
	c.issuer(iss)
	if len(c.errs) > before {
		return
	}
	if _, ok := IssuerSetName(iss); ok {
		c.fail("issuer", iss, "must be an issuer URL, not an issuer set")
	}
}

// keySet checks that a key set document is a JSON object with a "keys"
// array of objects, none carrying private or symmetric key material.
func (c *checker) keySet(field, doc string) {
	if len(doc) > MaxJWKSBytes {
		c.fail(field, "", "is %d bytes; the limit is %d", len(doc), MaxJWKSBytes)
		return
	}
	var set struct {
		Keys *[]map[string]json.RawMessage `json:"keys"`
	}
	d := json.NewDecoder(bytes.NewReader([]byte(doc)))
	if err := d.Decode(&set); err != nil || d.More() {
		c.fail(field, "", "must be a JSON Web Key Set: a JSON object {\"keys\": [...]} (as served at the issuer's jwks_uri or /openid/v1/jwks)")
		return
	}
	if set.Keys == nil || len(*set.Keys) == 0 {
		c.fail(field, "", "must hold at least one key in \"keys\"")
		return
	}
	for i, k := range *set.Keys {
		for name := range k {
			switch strings.ToLower(name) {
			case "d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv":
				c.fail(fmt.Sprintf("%s.keys[%d]", field, i), "", "holds the private or symmetric parameter %q: upload the issuer's public keys only", name)
			}
		}
	}
}
