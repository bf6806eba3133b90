package jwtdump

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func jwt(hdr, claims string) string { return b64(hdr) + "." + b64(claims) + "." + b64("sig-bytes") }

func TestRenderGolden(t *testing.T) {
	iat := now.Add(-18 * time.Minute).Unix()
	kube := `{"aud":["api://AzureADTokenExchange"],"exp":` + itoa(iat+3600) + `,"iat":` + itoa(iat) + `,"iss":"https://127.0.0.1:6443","jti":"8d9a0f36-2a0e-4f43-a0c5-5b7f8e1f2c3d","kubernetes.io":{"namespace":"default","pod":{"name":"demo-local","uid":"36086e1e-4536-5f6f-8e4f-b50335f51449"},"serviceaccount":{"name":"demo","uid":"30450156-b881-5b8b-b6ae-43445a049883"}},"nbf":` + itoa(iat) + `,"sub":"system:serviceaccount:default:demo"}`
	for _, tc := range []struct{ name, input string }{
		{"kube", jwt(`{"alg":"RS256","kid":"cy5YcrzFj53lvnWRkdtAs-IjkZdIGXkAY8HjScHFR4E"}`, kube)},
		{"expired", jwt(`{"alg":"RS256","typ":"JWT","kid":"k1"}`, `{"sub":"x","iat":`+itoa(now.Add(-26*time.Hour).Unix())+`,"exp":`+itoa(now.Add(-3*time.Minute).Unix())+`}`)},
		{"future-nbf-days", jwt(`{"alg":"RS256"}`, `{"nbf":`+itoa(now.Add(90*time.Second).Unix())+`,"exp":`+itoa(now.Add(50*time.Hour).Unix())+`}`)},
		{"odd-times", jwt(`{"alg":"none"}`, `{"iat":"yesterday","exp":1.5e300,"nbf":-5,"z":1,"a":2}`)},
		{"bearer-padded", "  Bearer " + jwt(`{"alg":"RS256"}`, `{"sub":"s"}`) + "==\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decode([]byte(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := d.Render(&out, now); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from %s:\n%s", path, out.Bytes())
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct{ name, input, want string }{
		{"empty", "  \n", "the input is empty"},
		{"plain text", "hello world", "got 1 segment(s)"},
		{"two segments", "a.b", "got 2 segment(s)"},
		{"jwe", "a.b.c.d.e", "encrypted token (JWE)"},
		{"bad base64", "!!!." + b64("{}") + ".", "header segment is not base64url"},
		{"header not json", b64("nope") + "." + b64("{}") + ".", "header segment is not a JSON object"},
		{"claims array", b64("{}") + "." + b64("[1]") + ".", "claims segment is not a JSON object"},
		{"claims null", b64("{}") + "." + b64("null") + ".", "claims segment is not a JSON object"},
		{"bad signature", b64("{}") + "." + b64("{}") + ".%%", "signature segment is not base64url"},
		{"too big", strings.Repeat("a", MaxTokenBytes+1), "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.input))
			if err == nil || !errors.Is(err, ErrNotJWT) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrNotJWT containing %q", err, tc.want)
			}
		})
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 42 * time.Second: "42s", 42 * time.Minute: "42m", 65 * time.Minute: "1h5m",
		2 * time.Hour: "2h", 51 * time.Hour: "2d3h", 48 * time.Hour: "2d",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(jwt(`{"alg":"RS256"}`, `{"exp":1795438800,"iat":1795435200}`)))
	f.Add([]byte("a.b.c"))
	f.Add([]byte("Bearer e30.e30."))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrNotJWT) {
				t.Fatalf("error not wrapping ErrNotJWT: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := d.Render(&out, now); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "not checked") {
			t.Fatal("output does not say the signature was not checked")
		}
	})
}
