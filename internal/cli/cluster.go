package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"
	"github.com/wif-project/wif/internal/tlsutil"
)

func newClusterCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Helpers for self-managed Kubernetes clusters",
	}
	cmd.AddCommand(newClusterOIDCCommand(streams), newClusterSyncCommand(streams))
	return cmd
}

func newClusterOIDCCommand(streams Streams) *cobra.Command {
	var keyFiles []string
	var issuer, out, output string
	cmd := &cobra.Command{
		Use:   "oidc",
		Short: "Write the OIDC discovery document and JWKS of a cluster's service account issuer",
		Long: `wif cluster oidc writes what a self-managed cluster's service account issuer
must publish so the token service can verify its tokens (like azwi jwks):

  DIR/.well-known/openid-configuration
  DIR/openid/v1/jwks

Serve DIR at the --issuer URL (the API server's --service-account-issuer),
e.g. from a static web server or object store over HTTPS. --service-account-key
takes the API server's --service-account-key-file (public or private keys,
PEM; repeat it during key rotation). Key ids are computed as the API server
computes them, so they match the kid of the tokens it signs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			disc, jwks, err := clusterOIDCDocuments(issuer, keyFiles)
			if err != nil {
				return err
			}
			files := []struct {
				path string
				data []byte
			}{
				{filepath.Join(out, ".well-known", "openid-configuration"), disc},
				{filepath.Join(out, "openid", "v1", "jwks"), jwks},
			}
			for _, f := range files {
				if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
					return fmt.Errorf("create %s: %w", filepath.Dir(f.path), err)
				}
				if err := tlsutil.WriteFileAtomic(f.path, f.data, 0o644); err != nil {
					return err
				}
			}
			if output == "json" {
				var set struct {
					Keys []struct {
						Kid string `json:"kid"`
					} `json:"keys"`
				}
				_ = json.Unmarshal(jwks, &set)
				kids := []string{}
				for _, k := range set.Keys {
					kids = append(kids, k.Kid)
				}
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"issuer": issuer, "discovery": files[0].path, "jwks": files[1].path, "kids": kids})
			}
			for _, f := range files {
				fmt.Fprintln(streams.Out, f.path)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&keyFiles, "service-account-key", nil, "PEM file of the service account signing key(s), public or private (repeatable; required)")
	f.StringVar(&issuer, "issuer", "", "the cluster's --service-account-issuer URL (https; required)")
	f.StringVar(&out, "out", ".", "directory to write the documents under")
	f.StringVarP(&output, "output", "o", "table", "table (the files written) or json (files, issuer and key ids)")
	return cmd
}

// clusterOIDCDocuments returns the discovery document and JWKS, in the shape
// kube-apiserver serves them.
func clusterOIDCDocuments(issuer string, keyFiles []string) (discovery, jwks []byte, err error) {
	var errs []error
	u, perr := url.Parse(issuer)
	if issuer == "" || perr != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("--issuer %q: expected an https URL without query or fragment, equal to the API server's --service-account-issuer", issuer))
	}
	if len(keyFiles) == 0 {
		errs = append(errs, errors.New("--service-account-key is required: the API server's --service-account-key-file"))
	}
	var keys []jose.JSONWebKey
	seen := map[string]bool{}
	for _, f := range keyFiles {
		pubs, err := readPublicKeys(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, pub := range pubs {
			k, err := jwkFor(pub)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f, err))
				continue
			}
			if !seen[k.KeyID] {
				seen[k.KeyID] = true
				keys = append(keys, k)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	base := strings.TrimSuffix(issuer, "/")
	algs := map[string]bool{}
	var algList []string
	for _, k := range keys {
		if !algs[k.Algorithm] {
			algs[k.Algorithm] = true
			algList = append(algList, k.Algorithm)
		}
	}
	discovery, err = json.MarshalIndent(map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              base + "/openid/v1/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": algList,
	}, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("encode discovery document: %w", err)
	}
	jwks, err = json.MarshalIndent(jose.JSONWebKeySet{Keys: keys}, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("encode JWKS: %w", err)
	}
	return append(discovery, '\n'), append(jwks, '\n'), nil
}

// readPublicKeys reads every public key in a PEM file (public keys, private
// keys or certificates).
func readPublicKeys(path string) ([]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service account key: %w", err)
	}
	var out []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub crypto.PublicKey
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "RSA PRIVATE KEY":
			var k *rsa.PrivateKey
			if k, err = x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
				pub = k.Public()
			}
		case "EC PRIVATE KEY":
			var k *ecdsa.PrivateKey
			if k, err = x509.ParseECPrivateKey(b.Bytes); err == nil {
				pub = k.Public()
			}
		case "PRIVATE KEY":
			var k any
			if k, err = x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				if s, ok := k.(crypto.Signer); ok {
					pub = s.Public()
				} else {
					err = fmt.Errorf("unsupported private key type %T", k)
				}
			}
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s block: %w", path, b.Type, err)
		}
		out = append(out, pub)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key, private key or certificate found", path)
	}
	return out, nil
}

// jwkFor builds the JWK kube-apiserver publishes for pub: kid is the
// base64url SHA-256 of the PKIX DER encoding.
func jwkFor(pub crypto.PublicKey) (jose.JSONWebKey, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	k := jose.JSONWebKey{Key: pub, KeyID: base64.RawURLEncoding.EncodeToString(sum[:]), Use: "sig"}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k.Algorithm = "RS256"
	case *ecdsa.PublicKey:
		switch p.Curve.Params().BitSize {
		case 256:
			k.Algorithm = "ES256"
		case 384:
			k.Algorithm = "ES384"
		case 521:
			k.Algorithm = "ES512"
		default:
			return jose.JSONWebKey{}, fmt.Errorf("unsupported ECDSA curve %s", p.Curve.Params().Name)
		}
	default:
		return jose.JSONWebKey{}, fmt.Errorf("unsupported service account key type %T: expected RSA or ECDSA", pub)
	}
	return k, nil
}
