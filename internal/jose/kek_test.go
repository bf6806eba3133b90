package jose

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKEK(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	for _, tc := range []struct {
		name    string
		content []byte
		want    []byte
		err     string
	}{
		{"raw", key, key, ""},
		{"base64", []byte(base64.StdEncoding.EncodeToString(key)), key, ""},
		{"base64 newline", []byte(base64.StdEncoding.EncodeToString(key) + "\n"), key, ""},
		{"base64 unpadded", []byte(base64.RawStdEncoding.EncodeToString(key)), key, ""},
		{"base64url", []byte(base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))), bytes.Repeat([]byte{0xfb}, 32), ""},
		{"hex", []byte(hex.EncodeToString(key) + "\r\n"), key, ""},
		{"short", []byte("0123456789"), nil, "expected 32 random bytes, raw or as base64 or hex"},
		{"base64 of 16 bytes", []byte(base64.StdEncoding.EncodeToString(key[:16])), nil, "got 24 bytes that are neither"},
		{"raw 33 bytes", append(bytes.Clone(key), 0), nil, "got 33 bytes"},
		{"zeros", make([]byte, 32), nil, "all zeros"},
		{"empty", nil, nil, "got 0 bytes"},
		{"huge", bytes.Repeat([]byte("A"), 10000), nil, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kek")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			logs := &logBuffer{}
			got, err := LoadKEK(path, logs.Logger())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err %v, want one naming the file and containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("key %x, want %x", got, tc.want)
			}
			if logs.String() != "" {
				t.Errorf("logged for a 0600 file: %s", logs)
			}
		})
	}
}

func TestLoadKEKPermissionsAndErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	if err := os.WriteFile(path, bytes.Repeat([]byte{7}, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // umask-proof
		t.Fatal(err)
	}
	logs := &logBuffer{}
	if _, err := LoadKEK(path, logs.Logger()); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); !strings.Contains(s, `"level":"WARN"`) || !strings.Contains(s, "chmod 600") || !strings.Contains(s, `"mode":"0644"`) {
		t.Errorf("no permissions warning: %s", s)
	}
	if _, err := LoadKEK(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadKEK(dir, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	k, err := newKEK(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := k.seal("kid", []byte("secret"))
	b, _ := k.seal("kid", []byte("secret"))
	if bytes.Equal(a, b) {
		t.Error("two seals of one plaintext are equal: the nonce is not random")
	}
	if pt, err := k.open("kid", a); err != nil || string(pt) != "secret" {
		t.Errorf("open: %q %v", pt, err)
	}
	if _, err := k.open("other", a); err == nil {
		t.Error("opened under another kid")
	}
	if KEKID([]byte("a")) == KEKID([]byte("b")) || len(KEKID([]byte("a"))) != 12 {
		t.Error("KEKID")
	}
}

func FuzzParseKEK(f *testing.F) {
	f.Add([]byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="))
	f.Add(bytes.Repeat([]byte{1}, 32))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := ParseKEK(raw)
		if err != nil {
			return
		}
		if len(k) != KEKSize {
			t.Fatalf("accepted a key of %d bytes", len(k))
		}
		if _, err := newKEK(k); err != nil {
			t.Fatal(err)
		}
	})
}
