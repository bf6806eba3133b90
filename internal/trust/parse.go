package trust

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted from a remote key set.
// Kubernetes, Entra and the CI issuers all publish 2048-bit or larger keys.
const minRSABits = 2048

// isPrivateParam reports whether a JWK member carries private or symmetric
// key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 9964 "priv"). A
// published key set containing any is a leak or an attack, and is refused
// whole. Names are compared case-insensitively to fail closed.
func isPrivateParam(name string) bool {
	switch strings.ToLower(name) {
	case "d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv":
		return true
	}
	return false
}

// discoveryDoc is the part of an OpenID Provider Configuration document
// that the cache uses.
type discoveryDoc struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// parseDiscovery decodes an OpenID configuration document and checks that
// it names an https jwks_uri. It does not compare the issuer; the caller
// does, because only it knows whether the Source pins one.
func parseDiscovery(data []byte) (discoveryDoc, error) {
	var doc discoveryDoc
	if err := decodeObject(data, &doc); err != nil {
		return discoveryDoc{}, fmt.Errorf("discovery document is not a JSON object: %w", err)
	}
	if doc.JWKSURI == "" {
		return discoveryDoc{}, errors.New(`discovery document has no "jwks_uri"`)
	}
	if err := checkHTTPS(doc.JWKSURI); err != nil {
		return discoveryDoc{}, fmt.Errorf(`discovery document "jwks_uri" %q: %w`, doc.JWKSURI, err)
	}
	return doc, nil
}

// parsedKeys is the result of parseJWKS.
type parsedKeys struct {
	// keys are the usable public signing keys, at most maxKeys, in
	// document order.
	keys []jose.JSONWebKey
	// skipped explains, one line per key, why a key was left out (the
	// first maxSkipReasons keys, then a count).
	skipped     []string
	moreSkipped int
}

// parseJWKS decodes a JWK Set (RFC 7517 §5) and keeps at most maxKeys
// public RSA and EC signing keys. Keys with a "use" other than "sig", of
// another type, too weak, or that fail to parse are skipped (and reported
// in skipped); a set with private or symmetric key material anywhere is
// refused whole, as is a document that is not a key set.
func parseJWKS(data []byte, maxKeys int) (parsedKeys, error) {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := decodeObject(data, &set); err != nil {
		return parsedKeys{}, fmt.Errorf("key set is not a JSON object: %w", err)
	}
	if set.Keys == nil {
		return parsedKeys{}, errors.New(`key set has no "keys" array`)
	}
	raws := *set.Keys
	// First pass: refuse the whole set if any entry carries private
	// material, before anything is parsed into a key.
	for i, raw := range raws {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			continue // not an object: skipped in the second pass
		}
		for name := range members {
			if isPrivateParam(name) {
				return parsedKeys{}, fmt.Errorf("%w: key %d has the private or symmetric key parameter %s; a published key set must hold public keys only", ErrPrivateKeyMaterial, i, quoteShort(name))
			}
		}
	}
	var out parsedKeys
	seen := make(map[string]bool, len(raws))
	for i, raw := range raws {
		if len(out.keys) >= maxKeys {
			out.finish()
			out.skipped = append(out.skipped, fmt.Sprintf("keys %d to %d: more than the %d keys kept", i, len(raws)-1, maxKeys))
			return out, nil
		}
		var hdr struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Use string `json:"use"`
		}
		if err := json.Unmarshal(raw, &hdr); err != nil {
			out.skip("key %d: not a JSON object", i)
			continue
		}
		if hdr.Use != "" && hdr.Use != "sig" {
			out.skip("key %d (kid %s): use %q, not \"sig\"", i, quoteShort(hdr.Kid), hdr.Use)
			continue
		}
		if hdr.Kty != "RSA" && hdr.Kty != "EC" && hdr.Kty != "OKP" {
			out.skip("key %d (kid %s): kty %q, only RSA, EC and OKP (Ed25519) are used", i, quoteShort(hdr.Kid), hdr.Kty)
			continue
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			out.skip("key %d (kid %s): %v", i, quoteShort(hdr.Kid), err)
			continue
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				out.skip("key %d (kid %s): RSA key of %d bits, at least %d required", i, quoteShort(k.KeyID), pub.N.BitLen(), minRSABits)
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			// encoding/json matches member names case-insensitively and
			// go-jose does not, so the two readers can disagree on "kty";
			// what go-jose parsed is what counts.
			out.skip("key %d (kid %s): not an RSA, EC or Ed25519 public key (%T)", i, quoteShort(k.KeyID), k.Key)
			continue
		}
		if !k.Valid() {
			out.skip("key %d (kid %s): invalid key", i, quoteShort(k.KeyID))
			continue
		}
		if k.KeyID != "" {
			if seen[k.KeyID] {
				out.skip("key %d: duplicate kid %s, the first one is kept", i, quoteShort(k.KeyID))
				continue
			}
			seen[k.KeyID] = true
		}
		out.keys = append(out.keys, k)
	}
	out.finish()
	return out, nil
}

// maxSkipReasons bounds the reasons kept for skipped keys: a 1 MiB key set
// can hold tens of thousands of entries, and the reasons end up in logs
// and error messages.
const maxSkipReasons = 20

// skip records why a key was left out.
func (p *parsedKeys) skip(format string, args ...any) {
	if len(p.skipped) < maxSkipReasons {
		p.skipped = append(p.skipped, fmt.Sprintf(format, args...))
		return
	}
	p.moreSkipped++
}

// finish adds the count of skipped keys whose reasons were not kept.
func (p *parsedKeys) finish() {
	if p.moreSkipped > 0 {
		p.skipped = append(p.skipped, fmt.Sprintf("and %d more keys skipped", p.moreSkipped))
		p.moreSkipped = 0
	}
}

// quoteShort quotes s for a message, cut to 64 bytes: kids come from
// remote documents and can be of any length.
func quoteShort(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "..."
}

// decodeObject decodes a single JSON object into v and refuses trailing
// data, so that a document is read exactly once and the same way by every
// reader.
func decodeObject(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return errors.New("expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// checkHTTPS reports whether s is an absolute https URL with a host and
// no user information.
func checkHTTPS(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInsecureURL, err)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q, only https is fetched", ErrInsecureURL, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: no host", ErrInsecureURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: user information in the URL is not allowed", ErrInsecureURL)
	}
	return nil
}
