package jose

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as the SHA-1 thumbprint of the certificate (RFC 7517 §4.8).
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/store"
)

const (
	// rsaBits is the size of signing keys. 2048 is what Entra uses and
	// what every validator accepts; larger keys cost 3-7x per signature.
	rsaBits = 2048
	// algorithm is the only signing algorithm.
	algorithm = "RS256"
	// certCommonName is the subject of the self-signed certificate
	// published in x5c.
	certCommonName = "wif token signing key"
)

// KeyID returns the kid of an RSA public key: its RFC 7638 JWK thumbprint
// (SHA-256 over the canonical {"e","kty","n"} JSON), base64url without
// padding: 43 characters anyone can recompute from the JWKS.
func KeyID(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// x5t returns the base64url SHA-1 thumbprint of a DER certificate, as Entra
// publishes in x5t and puts in v1 token headers.
func x5t(der []byte) string {
	s := sha1.Sum(der) //nolint:gosec // see import.
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// x5tS256 returns the base64url SHA-256 thumbprint of a DER certificate.
func x5tS256(der []byte) string {
	s := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// schedule is when a new key is published, signs, stops signing and leaves
// the JWKS.
type schedule struct {
	publish, activate, retire, expire time.Time
}

// newSigningKey generates an RSA key and its self-signed certificate, and
// returns it as stored (sealed with k when k is not nil).
func newSigningKey(now time.Time, s schedule, k *kek) (store.SigningKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	kid, err := KeyID(&priv.PublicKey)
	if err != nil {
		return store.SigningKey{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: certCommonName},
		// Validity covers the key's whole life in the JWKS, with an hour of
		// slack for clocks that are behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              s.expire.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("self-sign signing key certificate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("encode signing key: %w", err)
	}
	rec := store.SigningKey{
		ID:          kid,
		Algorithm:   algorithm,
		PrivateKey:  der,
		Certificate: cert,
		CreatedAt:   now,
		PublishAt:   s.publish,
		ActivateAt:  s.activate,
		RetireAt:    s.retire,
		ExpireAt:    s.expire,
	}
	if k != nil {
		if rec.PrivateKey, err = k.seal(kid, der); err != nil {
			return store.SigningKey{}, err
		}
		rec.KEKID = k.id
	}
	return rec, nil
}

// key is a stored signing key, parsed.
type key struct {
	id    string
	times schedule // expire is the effective expiry (see Manager.expiry)
	// kekID is the stored KEKID, kept for error messages.
	kekID string
	// fingerprint identifies the stored record, so a reload reuses the
	// parsed key only when nothing changed.
	fingerprint string

	pub     *rsa.PublicKey
	certDER []byte
	x5t     string
	x5tS256 string
	jwk     jwkJSON
	// priv is nil for keys that can no longer sign (retired) and for keys
	// that could not be opened (openErr says why).
	priv      *rsa.PrivateKey
	openErr   error
	signer    jose.Signer // header alg, kid, typ
	signerX5T jose.Signer // header alg, kid, typ, x5t
}

func recordFingerprint(r store.SigningKey) string {
	h := sha256.New()
	h.Write(r.PrivateKey)
	h.Write(r.Certificate)
	return fmt.Sprintf("%s|%s|%d|%d|%d|%d|%x", r.ID, r.KEKID, r.PublishAt.UnixMicro(), r.ActivateAt.UnixMicro(),
		r.RetireAt.UnixMicro(), r.ExpireAt.UnixMicro(), h.Sum(nil))
}

// parseKey checks a stored key's public half (a certificate whose key
// hashes to the kid) and, when needPrivate, opens its private key with k.
// Problems with the private key are kept in openErr rather than returned,
// so the public key is still published; a bad certificate is an error.
func parseKey(r store.SigningKey, ring *keyring, needPrivate bool) (*key, error) {
	if r.Algorithm != algorithm {
		return nil, fmt.Errorf("signing key %s: algorithm %q is not supported (only %s)", r.ID, r.Algorithm, algorithm)
	}
	cert, err := x509.ParseCertificate(r.Certificate)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: certificate: %w", r.ID, err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: certificate holds a %T, not an RSA key", r.ID, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("signing key %s: the certificate is not self-signed by its key (corrupted in the store?): %w", r.ID, err)
	}
	if pub.N.BitLen() < rsaBits {
		return nil, fmt.Errorf("signing key %s: RSA key of %d bits; at least %d are required", r.ID, pub.N.BitLen(), rsaBits)
	}
	kid, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	if kid != r.ID {
		return nil, fmt.Errorf("signing key %s: its certificate's public key has kid %s: the stored key was altered", r.ID, kid)
	}
	kk := &key{
		id:          r.ID,
		times:       schedule{publish: r.PublishAt, activate: r.ActivateAt, retire: r.RetireAt, expire: r.ExpireAt},
		kekID:       r.KEKID,
		fingerprint: recordFingerprint(r),
		pub:         pub,
		certDER:     r.Certificate,
		x5t:         x5t(r.Certificate),
		x5tS256:     x5tS256(r.Certificate),
	}
	kk.jwk = jwkJSON{
		Kty:     "RSA",
		Use:     "sig",
		Kid:     kid,
		X5t:     kk.x5t,
		N:       base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E:       base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		X5c:     []string{base64.StdEncoding.EncodeToString(r.Certificate)},
		Alg:     algorithm,
		X5tS256: kk.x5tS256,
	}
	if needPrivate {
		kk.openErr = kk.open(r, ring)
	}
	return kk, nil
}

// open decrypts and parses the private key and builds the cached signers.
func (kk *key) open(r store.SigningKey, ring *keyring) error {
	der, err := openPrivate(r, ring)
	if err != nil {
		return err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("signing key %s: private key: %w", r.ID, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("signing key %s: private key is a %T, not RSA", r.ID, parsed)
	}
	if !priv.PublicKey.Equal(kk.pub) {
		return fmt.Errorf("signing key %s: private key does not match its certificate", r.ID)
	}
	if err := priv.Validate(); err != nil {
		return fmt.Errorf("signing key %s: private key: %w", r.ID, err)
	}
	priv.Precompute()
	sk := jose.SigningKey{Algorithm: jose.RS256, Key: &jose.JSONWebKey{Key: priv, KeyID: kk.id, Algorithm: algorithm}}
	if kk.signer, err = jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT")); err != nil {
		return fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	if kk.signerX5T, err = jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t", kk.x5t)); err != nil {
		return fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	kk.priv = priv
	return nil
}

// openPrivate returns a stored key's PKCS#8 private key, unsealed with the
// key-encryption key it was sealed with.
func openPrivate(r store.SigningKey, ring *keyring) ([]byte, error) {
	if err := kekMismatch(r.ID, r.KEKID, ring); err != nil {
		return nil, err
	}
	if r.KEKID == "" {
		return r.PrivateKey, nil
	}
	return ring.byID[r.KEKID].open(r.ID, r.PrivateKey)
}

// kekMismatch says why a key sealed under kekID cannot be opened with the
// ring, or returns nil if it can (or is not sealed).
func kekMismatch(kid, kekID string, ring *keyring) error {
	switch {
	case kekID == "" || ring.byID[kekID] != nil:
		return nil
	case ring.sealer == nil:
		return fmt.Errorf("signing key %s is sealed with key-encryption key %s, but no key-encryption key is configured: start wif with the key-encryption key file (--key-encryption-key-file) this store was created with", kid, kekID)
	}
	if ids := ring.ids(); len(ids) > 1 {
		return fmt.Errorf("signing key %s was sealed with key-encryption key %s, but the configured key-encryption keys are %s: start wif with the key-encryption key file this store was created with (while replacing it, as --previous-key-encryption-key-file)", kid, kekID, strings.Join(ids, ", "))
	}
	return fmt.Errorf("signing key %s was sealed with key-encryption key %s, but key-encryption key %s is configured: start wif with the key-encryption key file this store was created with (while replacing it, as --previous-key-encryption-key-file)", kid, kekID, ring.sealer.id)
}
