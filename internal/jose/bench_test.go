package jose

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/store/memory"
)

// typicalClaims is a v1 access token's claim set of about 1 KB, the shape
// the token service signs.
func typicalClaims(b *testing.B) []byte {
	b.Helper()
	now := time.Now().Unix()
	claims := map[string]any{
		"aud":       "api://provider-api",
		"iss":       "https://wif.example.com/72f988bf-86f1-41af-91ab-2d7cd011db47/",
		"idp":       "https://wif.example.com/72f988bf-86f1-41af-91ab-2d7cd011db47/",
		"iat":       now,
		"nbf":       now,
		"exp":       now + 3600,
		"aio":       "k2BgYDD4kHt9sOKpbnJf3uHt/6xQAwA=ZmFrZS1vcGFxdWUtYWlvLXZhbHVlLWZvci1iZW5jaA==",
		"appid":     "11111111-1111-1111-1111-111111111111",
		"appidacr":  "2",
		"idtyp":     "app",
		"oid":       "22222222-2222-2222-2222-222222222222",
		"rh":        "0.AXEAv4j5cvGGr0GRqy180BHbRxEREREREREREREREREREREREQBxAA.",
		"roles":     []string{"Data.Read", "Data.Write", "Admin.All"},
		"sub":       "22222222-2222-2222-2222-222222222222",
		"tid":       "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"uti":       "Zm9vYmFyYmF6cXV4cXV1eA",
		"ver":       "1.0",
		"xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg-workloads-production/providers/Microsoft.ManagedIdentity/userAssignedIdentities/payments-service-identity",
		"xms_tcdt":  1289241547,
		"xms_cae":   "1",
		"xms_pdl":   "EUR",
		"xms_rd":    "0.42LlYBJiLBAS4WAXEijZ39-ztKZgz2fuAwpYDLzCgQlgqAAAAAAAAA",
	}
	p, err := json.Marshal(claims)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkSign is the token endpoint's signing step: Sign of a ~1 KB
// claim set with the x5t header (v1), on the cached signer.
func BenchmarkSign(b *testing.B) {
	m, err := NewManager(b.Context(), Options{Store: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	payload := typicalClaims(b)
	b.ReportMetric(float64(len(payload)), "claim-bytes")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Sign(payload, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRSASign2048 is the floor under BenchmarkSign: PKCS#1 v1.5
// signing of a SHA-256 digest with a precomputed 2048-bit key.
func BenchmarkRSASign2048(b *testing.B) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	priv.Precompute()
	digest := sha256.Sum256([]byte("header.payload"))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkJWKS is the keys endpoint's document lookup (cached).
func BenchmarkJWKS(b *testing.B) {
	m, err := NewManager(b.Context(), Options{Store: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if body, _ := m.JWKSWithETag(); len(body) == 0 {
				b.Error("empty JWKS")
				return
			}
		}
	})
}

// digestOnlySigner is a go-jose OpaqueSigner that hashes the signing input
// like RS256 but returns a fixed signature instead of the RSA operation.
type digestOnlySigner struct {
	pub *jose.JSONWebKey
	sig []byte
}

func (s digestOnlySigner) Public() *jose.JSONWebKey { return s.pub }
func (s digestOnlySigner) Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256}
}
func (s digestOnlySigner) SignPayload(p []byte, _ jose.SignatureAlgorithm) ([]byte, error) {
	_ = sha256.Sum256(p) // the digest RS256 computes
	return s.sig, nil
}

// BenchmarkSignOverhead is everything Sign does except the RSA private-key
// operation (header and payload encoding, SHA-256, serialization): the
// cost the JOSE layer adds to BenchmarkRSASign2048.
func BenchmarkSignOverhead(b *testing.B) {
	m, err := NewManager(b.Context(), Options{Store: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	kk := m.keys.Load().signerAt(time.Now())
	opaque := digestOnlySigner{pub: &jose.JSONWebKey{Key: kk.pub, KeyID: kk.id, Algorithm: algorithm}, sig: make([]byte, 256)}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: opaque}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t", kk.x5t))
	if err != nil {
		b.Fatal(err)
	}
	payload := typicalClaims(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			jws, err := s.Sign(payload)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := jws.CompactSerialize(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
