// Package issuer is an OIDC issuer shaped like a Kubernetes API server's
// service-account issuer, for places that have none (a laptop, a VM, CI).
// It serves /.well-known/openid-configuration and /openid/v1/jwks as
// kube-apiserver does, mints tokens shaped exactly like projected
// service-account tokens, and (Writer) keeps a token file fresh the way the
// kubelet does.
//
// Its RS256 key is kept in a state directory (issuer-key.pem, mode 0600), so
// a restart keeps the key and tokens minted before still verify.
package issuer

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/tlsutil"
)

// KeyFile is the name of the issuer's private key file in its state
// directory.
const KeyFile = "issuer-key.pem"

// Paths served by Handler, as kube-apiserver serves them.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/openid/v1/jwks"
)

// Limits on what Mint accepts.
const (
	// MinLifetime is the shortest token lifetime Mint accepts. The kubelet
	// asks for at least 10 minutes; a local issuer allows shorter ones so
	// that rotation can be watched and tested.
	MinLifetime = time.Second
	// MaxLifetime is the longest (kube-apiserver's default maximum for
	// projected tokens is 48 h with extension; 24 h here).
	MaxLifetime = 24 * time.Hour
)

// Options configure an Issuer.
type Options struct {
	// URL is the issuer identifier: the iss of its tokens and the base of
	// its discovery document. https, no query or fragment. A trailing '/'
	// is kept as given (AKS's issuer URLs end in '/', kube-apiserver's
	// usually do not); the federated credential must name it exactly.
	URL string
	// StateDir holds the key; created (0700) if absent. Empty means an
	// ephemeral key that is lost when the process ends.
	StateDir string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Issuer mints service-account tokens and serves the documents relying
// parties need to verify them. It is safe for concurrent use.
type Issuer struct {
	url    string
	key    *rsa.PrivateKey
	kid    string
	signer jose.Signer
	now    func() time.Time
	// uidNS is the UUIDv5 namespace from which service-account and pod uids
	// are derived: fixed by the key, so uids stay stable across restarts and
	// differ between state directories.
	uidNS uuid.UUID
}

// New loads (or creates) the issuer's key and returns the issuer.
func New(opts Options) (*Issuer, error) {
	if err := validateURL(opts.URL); err != nil {
		return nil, err
	}
	var key *rsa.PrivateKey
	var err error
	if opts.StateDir == "" {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate issuer key: %w", err)
		}
	} else if key, err = LoadOrCreateKey(opts.StateDir); err != nil {
		return nil, err
	}
	kid, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		return nil, fmt.Errorf("issuer signer: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Issuer{
		url:    opts.URL,
		key:    key,
		kid:    kid,
		signer: signer,
		now:    now,
		uidNS:  uuid.NewSHA1(uuid.NameSpaceURL, []byte("wif-issuer:"+kid)),
	}, nil
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer URL %q: want an https URL with a host and no query, fragment or user info (e.g. https://127.0.0.1:6443)", raw)
	}
	return nil
}

// LoadOrCreateKey reads the RSA key in dir/issuer-key.pem, creating a 2048-bit
// key there first (mode 0600, directory 0700) if there is none.
func LoadOrCreateKey(dir string) (*rsa.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		return parseKeyPEM(path, data)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read issuer key: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate issuer key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode issuer key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	if err := tlsutil.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("save issuer key: %w", err)
	}
	return key, nil
}

func parseKeyPEM(path string, data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("issuer key %s: no PEM block; delete the file to make a new key", path)
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("issuer key %s: PEM block %q, want PRIVATE KEY or RSA PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("issuer key %s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("issuer key %s: %T, want an RSA key (tokens are RS256)", path, k)
	}
	if rk.N.BitLen() < 2048 {
		return nil, fmt.Errorf("issuer key %s: %d-bit RSA key, want at least 2048 bits", path, rk.N.BitLen())
	}
	return rk, nil
}

// KeyID computes a key id the way kube-apiserver does
// (keyIDFromPublicKey): the unpadded base64url SHA-256 of the DER PKIX
// public key.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// URL is the issuer identifier.
func (i *Issuer) URL() string { return i.url }

// KeyID is the kid of the issuer's (single) key.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKey is the issuer's verification key.
func (i *Issuer) PublicKey() *rsa.PublicKey { return &i.key.PublicKey }

// Discovery is the OpenID provider metadata kube-apiserver serves: exactly
// these five fields.
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
}

// Discovery returns the issuer's metadata document.
func (i *Issuer) Discovery() Discovery {
	return Discovery{
		Issuer:                           i.url,
		JWKSURI:                          strings.TrimSuffix(i.url, "/") + JWKSPath,
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{"RS256"},
	}
}

// JWKS returns the key set: the public key with use "sig", alg RS256 and its
// kid, as kube-apiserver publishes it.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &i.key.PublicKey,
		KeyID:     i.kid,
		Algorithm: string(jose.RS256),
		Use:       "sig",
	}}}
}

// Handler serves the discovery document and the key set. Both paths sit
// under the issuer URL's path, so an issuer URL with a path works too.
func (i *Issuer) Handler() http.Handler {
	disc, err := json.Marshal(i.Discovery())
	if err != nil {
		panic("issuer: marshal discovery: " + err.Error()) // plain strings; cannot fail
	}
	jwks, err := json.Marshal(i.JWKS())
	if err != nil {
		panic("issuer: marshal JWKS: " + err.Error()) // an RSA public key; cannot fail
	}
	prefix := ""
	if u, err := url.Parse(i.url); err == nil {
		prefix = strings.TrimSuffix(u.Path, "/")
	}
	serve := func(body []byte, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "public, max-age=3600")
			_, _ = w.Write(body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix+DiscoveryPath, serve(disc, "application/json"))
	mux.Handle("GET "+prefix+JWKSPath, serve(jwks, "application/jwk-set+json"))
	return mux
}

// TokenRequest says whom a token is for.
type TokenRequest struct {
	// Namespace and ServiceAccount name the service account (required).
	Namespace      string
	ServiceAccount string
	// PodName is the pod the token is bound to; default
	// DefaultPodName(ServiceAccount).
	PodName string
	// Audiences default to [api://AzureADTokenExchange].
	Audiences []string
	// Lifetime defaults to 1 h; between MinLifetime and MaxLifetime.
	Lifetime time.Duration
}

// DefaultPodName is the pod name a token names when the request gives none.
func DefaultPodName(serviceAccount string) string { return serviceAccount + "-local" }

// Kubernetes DNS-1123 names: what namespaces, service accounts and pods may be
// called (subdomain form: lower-case alphanumerics, '-' and '.').
var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func checkName(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required", field)
	}
	if len(v) > 253 || !dns1123.MatchString(v) {
		return fmt.Errorf("%s %q is not a valid Kubernetes name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters", field, v)
	}
	return nil
}

// Normalize fills defaults and checks the request.
func (r TokenRequest) Normalize() (TokenRequest, error) {
	if r.PodName == "" && r.ServiceAccount != "" {
		r.PodName = DefaultPodName(r.ServiceAccount)
	}
	if len(r.Audiences) == 0 {
		r.Audiences = []string{directory.DefaultAudience}
	}
	if r.Lifetime == 0 {
		r.Lifetime = time.Hour
	}
	var errs []error
	for _, c := range []struct{ f, v string }{{"namespace", r.Namespace}, {"service account", r.ServiceAccount}, {"pod name", r.PodName}} {
		if err := checkName(c.f, c.v); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range r.Audiences {
		if a == "" {
			errs = append(errs, errors.New("an audience is empty"))
		}
	}
	if r.Lifetime < MinLifetime || r.Lifetime > MaxLifetime {
		errs = append(errs, fmt.Errorf("lifetime %s: want between %s and %s", r.Lifetime, MinLifetime, MaxLifetime))
	}
	return r, errors.Join(errs...)
}

// Claims are a projected service-account token's claims, in the shape
// kube-apiserver issues them (pkg/serviceaccount/claims.go).
type Claims struct {
	Issuer     string          `json:"iss"`
	Subject    string          `json:"sub"`
	Audience   []string        `json:"aud"`
	IssuedAt   int64           `json:"iat"`
	NotBefore  int64           `json:"nbf"`
	Expiry     int64           `json:"exp"`
	ID         string          `json:"jti"`
	Kubernetes KubernetesClaim `json:"kubernetes.io"`
}

// KubernetesClaim is the private "kubernetes.io" claim.
type KubernetesClaim struct {
	Namespace      string `json:"namespace"`
	ServiceAccount Ref    `json:"serviceaccount"`
	Pod            *Ref   `json:"pod,omitempty"`
}

// Ref names a Kubernetes object.
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Subject is the sub of a service account's tokens.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// UID returns the stable uid this issuer gives the object of kind (e.g.
// "serviceaccount", "pod") named namespace/name: a UUIDv5 derived from the
// issuer's key, so it survives restarts on the same state directory.
func (i *Issuer) UID(kind, namespace, name string) string {
	return uuid.NewSHA1(i.uidNS, []byte(kind+"/"+namespace+"/"+name)).String()
}

// Token is a minted token with its claims.
type Token struct {
	Raw    string
	Claims Claims
}

// IssuedAt is the token's iat as a time.
func (t Token) IssuedAt() time.Time { return time.Unix(t.Claims.IssuedAt, 0) }

// Expiry is the token's exp as a time.
func (t Token) Expiry() time.Time { return time.Unix(t.Claims.Expiry, 0) }

// Mint signs a token for req.
func (i *Issuer) Mint(req TokenRequest) (Token, error) {
	req, err := req.Normalize()
	if err != nil {
		return Token{}, err
	}
	now := i.now().Truncate(time.Second)
	c := Claims{
		Issuer:    i.url,
		Subject:   Subject(req.Namespace, req.ServiceAccount),
		Audience:  append([]string(nil), req.Audiences...),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    now.Add(req.Lifetime).Unix(),
		ID:        uuid.NewString(),
		Kubernetes: KubernetesClaim{
			Namespace:      req.Namespace,
			ServiceAccount: Ref{Name: req.ServiceAccount, UID: i.UID("serviceaccount", req.Namespace, req.ServiceAccount)},
			Pod:            &Ref{Name: req.PodName, UID: i.UID("pod", req.Namespace, req.PodName)},
		},
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return Token{}, fmt.Errorf("encode claims: %w", err)
	}
	jws, err := i.signer.Sign(payload)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return Token{}, fmt.Errorf("serialize token: %w", err)
	}
	return Token{Raw: raw, Claims: c}, nil
}
