package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestClusterOIDC(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pubFile := filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	privFile := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err = runCluster(t, &stdout, &stderr, "oidc",
		"--service-account-key", pubFile, "--service-account-key", privFile, "--issuer", "https://k8s.example/cluster-1", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	disc, err := os.ReadFile(filepath.Join(out, ".well-known", "openid-configuration"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "id_token_signing_alg_values_supported": [
    "RS256"
  ],
  "issuer": "https://k8s.example/cluster-1",
  "jwks_uri": "https://k8s.example/cluster-1/openid/v1/jwks",
  "response_types_supported": [
    "id_token"
  ],
  "subject_types_supported": [
    "public"
  ]
}
`
	if string(disc) != want {
		t.Errorf("discovery:\n%s\nwant:\n%s", disc, want)
	}
	raw, err := os.ReadFile(filepath.Join(out, "openid", "v1", "jwks"))
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	// The same key given as public and private key appears once.
	if len(set.Keys) != 1 || set.Keys[0].Algorithm != "RS256" || set.Keys[0].Use != "sig" || !set.Keys[0].IsPublic() {
		t.Fatalf("jwks: %s", raw)
	}
	// kid as kube-apiserver computes it (serviceaccount.keyIDFromPublicKey).
	if kid := set.Keys[0].KeyID; len(kid) != 43 || strings.ContainsAny(kid, "+/=") {
		t.Errorf("kid %q: want unpadded base64url of a SHA-256", kid)
	}

	// The files, in order; -o json adds the issuer and the key ids.
	if want := filepath.Join(out, ".well-known", "openid-configuration") + "\n" + filepath.Join(out, "openid", "v1", "jwks") + "\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	stdout.Reset()
	if err := runCluster(t, &stdout, &stderr, "oidc", "--service-account-key", pubFile, "--issuer", "https://k8s.example/cluster-1", "--out", out, "-o", "json"); err != nil {
		t.Fatal(err)
	}
	var js struct {
		Issuer, Discovery, JWKS string
		Kids                    []string
	}
	if err := json.Unmarshal(stdout.Bytes(), &js); err != nil || js.Issuer != "https://k8s.example/cluster-1" || len(js.Kids) != 1 || js.Kids[0] != set.Keys[0].KeyID ||
		js.JWKS != filepath.Join(out, "openid", "v1", "jwks") {
		t.Errorf("-o json: %v %s", err, stdout.String())
	}

	err = runCluster(t, &stdout, &stderr, "oidc", "--issuer", "http://x")
	if err == nil || !strings.Contains(err.Error(), `--issuer "http://x": expected an https URL`) || !strings.Contains(err.Error(), "--service-account-key is required") {
		t.Errorf("err = %v; want both faults reported", err)
	}
}

func runCluster(t *testing.T, stdout, stderr *bytes.Buffer, args ...string) error {
	cmd := newClusterCommand(Streams{Out: stdout, ErrOut: stderr})
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	return cmd.ExecuteContext(t.Context())
}
