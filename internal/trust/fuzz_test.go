package trust

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseJWKS feeds arbitrary documents to the key set parser: it must
// never panic, and whatever it keeps must be a bounded number of distinct,
// valid RSA or EC public signing keys. Seeds: testdata/fuzz/FuzzParseJWKS.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[]}`))
	const maxKeys = 3
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseJWKS(data, maxKeys)
		if err != nil {
			if len(got.keys) != 0 {
				t.Fatalf("keys returned with error %v", err)
			}
			return
		}
		if len(got.keys) > maxKeys {
			t.Fatalf("%d keys kept, limit %d", len(got.keys), maxKeys)
		}
		seen := map[string]bool{}
		for _, k := range got.keys {
			switch pub := k.Key.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < minRSABits {
					t.Fatalf("weak RSA key kept: %d bits", pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
			default:
				t.Fatalf("kept a %T", k.Key)
			}
			if !k.IsPublic() || !k.Valid() {
				t.Fatalf("kept an invalid or non-public key %q", k.KeyID)
			}
			if k.Use != "" && k.Use != "sig" {
				t.Fatalf("kept a key with use %q", k.Use)
			}
			if k.KeyID != "" {
				if seen[k.KeyID] {
					t.Fatalf("duplicate kid %q kept", k.KeyID)
				}
				seen[k.KeyID] = true
			}
			out, err := json.Marshal(k)
			if err != nil {
				t.Fatalf("a kept key does not marshal: %v", err)
			}
			if strings.Contains(string(out), `"d":`) {
				t.Fatalf("a kept key carries private material: %s", out)
			}
		}
	})
}

// FuzzParseDiscovery feeds arbitrary documents to the discovery parser: it
// must never panic, and an accepted document always names an https
// jwks_uri. Seeds: testdata/fuzz/FuzzParseDiscovery.
func FuzzParseDiscovery(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://h","jwks_uri":"https://h/k"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseDiscovery(data)
		if err != nil {
			if doc != (discoveryDoc{}) {
				t.Fatalf("document returned with error %v", err)
			}
			return
		}
		if err := checkHTTPS(doc.JWKSURI); err != nil {
			t.Fatalf("accepted jwks_uri %q: %v", doc.JWKSURI, err)
		}
	})
}
