package tokenauth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/go-jose/go-jose/v4"
)

// KeySet supplies the keys that may have signed a token. Implementations
// must be safe for concurrent use and must never take keys from the token
// itself (jku, x5u and jwk headers are ignored by the Validator).
type KeySet interface {
	// VerificationKeys returns the candidate keys for a token whose header
	// names kid ("" when the header has none). An unknown kid is not an
	// error: return no keys. Return an error only when the keys cannot be
	// obtained at all (the Validator then reports KindKeysUnavailable).
	VerificationKeys(ctx context.Context, kid string) ([]jose.JSONWebKey, error)
}

// StaticKeySet is a fixed set of keys, for tests and for keys given inline
// (APIM's issuer-signing-keys). A key without a KeyID matches any kid.
//
//	keys := tokenauth.StaticKeySet{{Key: &rsaKey.PublicKey, KeyID: "k1"}}
type StaticKeySet []jose.JSONWebKey

// VerificationKeys returns the keys whose KeyID equals kid, plus keys
// without a KeyID; all keys when kid is empty.
func (s StaticKeySet) VerificationKeys(_ context.Context, kid string) ([]jose.JSONWebKey, error) {
	if kid == "" {
		return s, nil
	}
	var out []jose.JSONWebKey
	for _, k := range s {
		if k.KeyID == "" || k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out, nil
}

// RSAKeyFromComponents builds an RSA public key from base64url modulus and
// exponent, as in a JWK or APIM's <key n="..." e="..."/>.
func RSAKeyFromComponents(n, e string) (*rsa.PublicKey, error) {
	nb, err := decodeB64(n)
	if err != nil {
		return nil, fmt.Errorf("RSA modulus n: %w", err)
	}
	eb, err := decodeB64(e)
	if err != nil {
		return nil, fmt.Errorf("RSA exponent e: %w", err)
	}
	if len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("RSA exponent e: want 1 to 4 bytes")
	}
	exp := int(new(big.Int).SetBytes(eb).Int64())
	if exp < 3 || exp%2 == 0 {
		return nil, fmt.Errorf("RSA exponent e: %d is not a valid public exponent", exp)
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: exp}
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA modulus n: %d bits, want at least %d", key.N.BitLen(), minRSABits)
	}
	return key, nil
}

// decodeB64 accepts base64url or standard base64, padded or not (APIM
// documents use either).
func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}

// DecodeSymmetricKey decodes a base64 symmetric key (APIM's <key>BASE64</key>).
func DecodeSymmetricKey(s string) ([]byte, error) {
	b, err := decodeB64(s)
	if err != nil {
		return nil, err
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("symmetric key is %d bytes, want at least 32 for HS256", len(b))
	}
	return b, nil
}

const minRSABits = 2048
