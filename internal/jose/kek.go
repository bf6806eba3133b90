package jose

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// KEKSize is the size of a key-encryption key: 32 bytes, for AES-256-GCM.
const KEKSize = 32

// maxKEKFile bounds how much of a key-encryption key file is read.
const maxKEKFile = 4096

// sealVersion is the first byte of a sealed private key, so the format can
// change later without guessing.
const sealVersion = 1

// LoadKEK reads a key-encryption key from path: either exactly 32 raw bytes,
// or text holding them as base64 (standard or URL alphabet, padded or not)
// or as 64 hex digits, e.g. the output of `head -c 32 /dev/urandom | base64`
// or `openssl rand -hex 32`. It warns on logger (when not nil) if the file
// can be read by its group or by others.
func LoadKEK(path string, logger *slog.Logger) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read key-encryption key: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && logger != nil {
		logger.Warn("the key-encryption key file can be read by users other than its owner; restrict it (chmod 600) so that only wif can unseal the signing keys",
			"path", path, "mode", fmt.Sprintf("%04o", perm))
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKEKFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key %s: %w", path, err)
	}
	kek, err := ParseKEK(raw)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %s: %w", path, err)
	}
	return kek, nil
}

// ParseKEK decodes a key-encryption key in one of the forms LoadKEK accepts.
func ParseKEK(raw []byte) ([]byte, error) {
	if len(raw) > maxKEKFile {
		return nil, fmt.Errorf("too long (%d bytes or more); expected 32 random bytes, raw or as base64 or hex", maxKEKFile)
	}
	var kek []byte
	if len(raw) == KEKSize {
		kek = bytes.Clone(raw)
	} else {
		text := string(bytes.TrimSpace(raw))
		for _, dec := range []func(string) ([]byte, error){
			base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
			base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
			hex.DecodeString,
		} {
			if b, err := dec(text); err == nil && len(b) == KEKSize {
				kek = b
				break
			}
		}
	}
	if kek == nil {
		return nil, fmt.Errorf("expected 32 random bytes, raw or as base64 or hex (make one with `head -c 32 /dev/urandom | base64`); got %d bytes that are neither", len(raw))
	}
	if subtle.ConstantTimeCompare(kek, make([]byte, KEKSize)) == 1 {
		return nil, errors.New("the key is all zeros; make a random one with `head -c 32 /dev/urandom | base64`")
	}
	return kek, nil
}

// kek seals and opens private keys with AES-256-GCM.
type kek struct {
	id   string
	aead cipher.AEAD
}

// KEKID returns the short id under which keys sealed with kek are stored:
// hex of the first 6 bytes of a domain-separated SHA-256 of the key. It
// names the key in errors without revealing it.
func KEKID(k []byte) string {
	h := sha256.New()
	h.Write([]byte("wif key-encryption key id\x00"))
	h.Write(k)
	return hex.EncodeToString(h.Sum(nil)[:6])
}

func newKEK(k []byte) (*kek, error) {
	if len(k) != KEKSize {
		return nil, fmt.Errorf("key-encryption key has %d bytes; it must have %d", len(k), KEKSize)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return &kek{id: KEKID(k), aead: aead}, nil
}

// keyring is the key-encryption key that seals new keys and every key-
// encryption key accepted to open stored ones: the sealing key and, while a
// key-encryption key is being replaced, the previous ones (Options.
// PreviousKEKs), so replicas can run with both until every key is sealed
// anew (Manager.Rewrap).
type keyring struct {
	sealer *kek // nil: keys are stored in the clear
	byID   map[string]*kek
}

func newKeyring(current []byte, previous [][]byte) (*keyring, error) {
	r := &keyring{byID: map[string]*kek{}}
	if current != nil {
		k, err := newKEK(current)
		if err != nil {
			return nil, err
		}
		r.sealer, r.byID[k.id] = k, k
	}
	for i, p := range previous {
		k, err := newKEK(p)
		if err != nil {
			return nil, fmt.Errorf("previous key-encryption key %d: %w", i+1, err)
		}
		r.byID[k.id] = k
	}
	if len(previous) > 0 && r.sealer == nil {
		return nil, errors.New("previous key-encryption keys are given but no current one: give the key that seals from now on too")
	}
	return r, nil
}

// ids lists the accepted key-encryption keys, the sealing one first.
func (r *keyring) ids() []string {
	var out []string
	if r.sealer != nil {
		out = append(out, r.sealer.id)
	}
	for id := range r.byID {
		if r.sealer == nil || id != r.sealer.id {
			out = append(out, id)
		}
	}
	return out
}

// seal encrypts plaintext with a random nonce and kid as additional data,
// so a sealed key cannot be moved to another kid. The result is
// version || nonce || ciphertext+tag.
func (k *kek) seal(kid string, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal signing key: %w", err)
	}
	return k.aead.Seal(out, out[1:], plaintext, []byte(kid)), nil
}

// open reverses seal.
func (k *kek) open(kid string, sealed []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("signing key %s: the sealed private key is malformed (%d bytes, format %d; expected format %d)", kid, len(sealed), firstByte(sealed), sealVersion)
	}
	pt, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: the sealed private key fails authentication with key-encryption key %s: it was corrupted or tampered with in the store", kid, k.id)
	}
	return pt, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
