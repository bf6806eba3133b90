package jose

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"time"
)

// jwkJSON is one key of the JWKS document. The first seven fields are
// Entra's, in Entra's order; alg and x5t#S256 are wif's additions (RFC 7517
// optional members every validator accepts).
type jwkJSON struct {
	Kty     string   `json:"kty"`
	Use     string   `json:"use"`
	Kid     string   `json:"kid"`
	X5t     string   `json:"x5t"`
	N       string   `json:"n"`
	E       string   `json:"e"`
	X5c     []string `json:"x5c"`
	Alg     string   `json:"alg"`
	X5tS256 string   `json:"x5t#S256"`
}

type jwksJSON struct {
	Keys []jwkJSON `json:"keys"`
}

// jwksDoc is a rendered JWKS document and the span of time (between two key
// events) during which it is current for its key set.
type jwksDoc struct {
	set         *keySet
	from, until time.Time
	body        []byte
	etag        string
}

// JWKS returns the JSON Web Key Set document ({"keys":[...]}) of the keys
// published now: the active key first, then the others newest first. The
// document is cached until the key set or the published keys change; the
// caller must not modify it.
func (m *Manager) JWKS() []byte {
	body, _ := m.JWKSWithETag()
	return body
}

// JWKSWithETag returns JWKS and its strong entity tag (quoted, for the ETag
// header), which changes exactly when the document does.
func (m *Manager) JWKSWithETag() (body []byte, etag string) {
	now, set := m.now(), m.keys.Load()
	if d := m.jwks.Load(); d != nil && d.set == set && !now.Before(d.from) && now.Before(d.until) {
		return d.body, d.etag
	}
	d := buildJWKS(set, now)
	m.jwks.Store(d)
	return d.body, d.etag
}

func buildJWKS(set *keySet, now time.Time) *jwksDoc {
	d := &jwksDoc{set: set, until: time.Unix(1<<62, 0)}
	cur := set.signerAt(now)
	var pub []*key
	for _, kk := range set.keys {
		for _, b := range []time.Time{kk.times.publish, kk.times.activate, kk.times.retire, kk.times.expire} {
			if !now.Before(b) && b.After(d.from) {
				d.from = b
			}
			if now.Before(b) && b.Before(d.until) {
				d.until = b
			}
		}
		if kk.published(now) {
			pub = append(pub, kk)
		}
	}
	slices.SortStableFunc(pub, func(a, b *key) int {
		switch {
		case a == cur:
			return -1
		case b == cur:
			return 1
		}
		return b.times.activate.Compare(a.times.activate)
	})
	doc := jwksJSON{Keys: make([]jwkJSON, 0, len(pub))}
	for _, kk := range pub {
		doc.Keys = append(doc.Keys, kk.jwk)
	}
	body, err := json.Marshal(doc)
	if err != nil {
		panic("jose: marshal JWKS: " + err.Error()) // strings only: cannot fail
	}
	sum := sha256.Sum256(body)
	d.body = body
	d.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	return d
}
