package trust

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Profile is how the Sources naming it are fetched, when that differs from
// the cache's own client: extra CA certificates for an issuer whose
// certificate a private CA signed, or leave to reach private addresses.
type Profile struct {
	// CABundle is PEM certificates trusted besides the client's roots.
	CABundle []byte
	// AllowPrivateAddresses lifts the AddressGuard for this profile.
	AllowPrivateAddresses bool
}

// clientFor returns the HTTP client for src's profile, building it on
// first use. A profile the Options do not know refuses the fetch.
func (c *Cache) clientFor(src Source) (*http.Client, error) {
	if src.Profile == "" {
		return c.client, nil
	}
	c.profMu.Lock()
	defer c.profMu.Unlock()
	if cl, ok := c.profiles[src.Profile]; ok {
		return cl, nil
	}
	if c.opts.Profile == nil {
		return nil, fmt.Errorf("%w: fetch profile %q is not configured", ErrNotAllowed, src.Profile)
	}
	p, err := c.opts.Profile(src.Profile)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch profile %q: %v", ErrNotAllowed, src.Profile, err)
	}
	cl, err := profileClient(c.opts, p)
	if err != nil {
		return nil, err
	}
	if c.profiles == nil {
		c.profiles = map[string]*http.Client{}
	}
	c.profiles[src.Profile] = cl
	return cl, nil
}

// profileClient is the cache's client with p's changes.
func profileClient(opts Options, p Profile) (*http.Client, error) {
	guard := opts.Guard
	if p.AllowPrivateAddresses {
		guard = nil
	}
	cl := newClient(opts.HTTPClient, opts.FetchTimeout, nil)
	if len(p.CABundle) > 0 {
		var tr *http.Transport
		switch t := cl.Transport.(type) {
		case nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			tr = t.Clone()
		default:
			return nil, errors.New("trust: a CA bundle needs an *http.Transport")
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if tr.TLSClientConfig != nil {
			tc = tr.TLSClientConfig.Clone()
		}
		roots := tc.RootCAs
		if roots == nil {
			sys, err := x509.SystemCertPool()
			if err != nil || sys == nil {
				sys = x509.NewCertPool()
			}
			roots = sys
		} else {
			roots = roots.Clone()
		}
		if !roots.AppendCertsFromPEM(p.CABundle) {
			return nil, errors.New("trust: the CA bundle holds no PEM certificate")
		}
		tc.RootCAs = roots
		tr.TLSClientConfig = tc
		cl.Transport = tr
	}
	if guard != nil {
		return guardClient(cl, guard), nil
	}
	return cl, nil
}

// KeySetOptions say which keys of a key set ParseKeySet keeps.
type KeySetOptions struct {
	// MaxKeys bounds the keys kept (default DefaultMaxKeys).
	MaxKeys int
	// RequireUse skips keys without "use": "sig".
	RequireUse bool
}

// ParsedKeySet is what ParseKeySet kept of a key set, and why it left out
// the rest.
type ParsedKeySet struct {
	Keys []jose.JSONWebKey
	// Skipped explains, one line per key, each key left out.
	Skipped []string
}

// ParseKeySet parses a JSON Web Key Set document exactly as fetched key
// sets are parsed: public RSA (2048 bits or more), EC and Ed25519 signing
// keys are kept; a set holding private or symmetric key material is
// refused whole (ErrPrivateKeyMaterial). The token service uses it for
// key sets that are uploaded or pushed rather than fetched.
func ParseKeySet(data []byte, opts KeySetOptions) (ParsedKeySet, error) {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	p, err := parseJWKS(data, opts.MaxKeys)
	if err != nil {
		return ParsedKeySet{}, err
	}
	out := ParsedKeySet{Skipped: p.skipped}
	for _, k := range p.keys {
		if opts.RequireUse && k.Use != "sig" {
			out.Skipped = append(out.Skipped, fmt.Sprintf("kid %s: no \"use\": \"sig\", which this issuer requires", quoteShort(k.KeyID)))
			continue
		}
		out.Keys = append(out.Keys, k)
	}
	return out, nil
}

// CanonicalJSON re-encodes a JSON document compactly with object members
// in sorted order, so two encodings of the same key set compare equal.
func CanonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return json.Marshal(v)
}

// UsableKeySet checks an uploaded or pushed key set as the token service
// will read it: a JSON Web Key Set with at least one usable public signing
// key that has a kid. It returns the set in canonical form (CanonicalJSON,
// as it is stored) or
// an error saying what is wrong with it.
func UsableKeySet(raw []byte, requireUse bool) ([]byte, error) {
	canon, err := CanonicalJSON(raw)
	if err != nil {
		return nil, errors.New(`must be a JSON Web Key Set object {"keys": [...]}`)
	}
	set, err := ParseKeySet(canon, KeySetOptions{RequireUse: requireUse})
	if err != nil {
		return nil, err
	}
	for _, k := range set.Keys {
		if k.KeyID != "" {
			return canon, nil
		}
	}
	why := "no key at all"
	if len(set.Skipped) > 0 {
		why = strings.Join(set.Skipped, "; ")
	} else if len(set.Keys) > 0 {
		why = "its keys have no kid"
	}
	return nil, errors.New("holds no usable public signing key with a kid (RSA of 2048 bits or more, EC, Ed25519): " + why)
}
