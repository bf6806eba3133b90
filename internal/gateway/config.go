// Package gateway is wif's token-validating reverse proxy: routes map a
// path prefix to a backend URL and an APIM policy document (parsed by
// gateway/apim), whose steps — validate-jwt, validate-azure-ad-token,
// check-header, set-header, rate-limit-by-key, return-response — run on
// every request. It adds correlation ids, x-request-duration, identity
// headers for the backend (incoming copies stripped), Prometheus metrics and
// health/readiness probes (spec/gateway.md).
package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/wif-project/wif/internal/gateway/apim"
)

// Config is the gateway's YAML file.
//
//	listen: 127.0.0.1:8080
//	tokenService:
//	  url: https://127.0.0.1:8443        # the wif token service
//	  caFile: ca.pem                      # trusted when fetching its keys
//	  entraPublicHosts: true              # login.microsoftonline.com and sts.windows.net stand for it
//	routes:
//	- name: orders
//	  pathPrefix: /orders/
//	  backend: http://127.0.0.1:9000/
//	  policy: policysample.xml            # relative to this file
type Config struct {
	// Listen is the address to serve on (default 127.0.0.1:8080).
	Listen string `json:"listen,omitempty"`
	// TLS, when set, makes the gateway serve HTTPS.
	TLS *TLSFiles `json:"tls,omitempty"`
	// TokenService is the wif token service that validate-azure-ad-token
	// uses, and that Entra's public URLs stand for when EntraPublicHosts.
	TokenService TokenService `json:"tokenService,omitempty"`
	// Certificates maps APIM certificate ids (<key certificate-id="...">)
	// to PEM certificate files.
	Certificates map[string]string `json:"certificates,omitempty"`
	// BackendCAFile, when set, is trusted (besides the system roots) for
	// https backends.
	BackendCAFile string `json:"backendCAFile,omitempty"`
	// BackendTimeout bounds the wait for a backend's response headers
	// (default 30s).
	BackendTimeout Duration `json:"backendTimeout,omitempty"`
	// Routes are matched by longest path prefix.
	Routes []Route `json:"routes"`

	// dir is the directory relative paths are resolved against.
	dir string
}

// TLSFiles names a serving certificate and key.
type TLSFiles struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// TokenService locates a wif token service.
type TokenService struct {
	// URL is its base URL, e.g. https://127.0.0.1:8443.
	URL string `json:"url,omitempty"`
	// CAFile is a PEM CA trusted (besides the system roots) when fetching
	// discovery documents and keys.
	CAFile string `json:"caFile,omitempty"`
	// EntraPublicHosts makes https://login.microsoftonline.com/ and
	// https://sts.windows.net/ in openid-config URLs stand for URL, so a
	// production policy runs unedited: its
	// https://login.microsoftonline.com/{tid}/v2.0/.well-known/openid-configuration
	// is fetched from {URL}/{tid}/v2.0/.well-known/openid-configuration.
	// Issuers are still compared with the token's literal iss, which wif
	// emits in Entra's form when run with --entra-issuer-names.
	EntraPublicHosts bool `json:"entraPublicHosts,omitempty"`
}

// Route maps a path prefix to a backend and a policy.
type Route struct {
	// Name labels metrics and logs (default: the path prefix).
	Name string `json:"name,omitempty"`
	// PathPrefix selects requests ("/" matches all); it is removed before
	// the rest of the path is appended to Backend's path, as APIM does
	// with an API's URL suffix.
	PathPrefix string `json:"pathPrefix"`
	// Backend is the http(s) URL requests are forwarded to.
	Backend string `json:"backend"`
	// Policy is the APIM policy file (relative to the config file).
	Policy string `json:"policy"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// LoadConfig reads and checks a gateway config file. Unknown keys are
// errors; every problem found is reported at once.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gateway config: %w", err)
	}
	cfg, err := ParseConfig(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a gateway config; relative paths in it are resolved
// against dir.
func ParseConfig(data []byte, dir string) (*Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("invalid gateway config: %w", err)
	}
	cfg.dir = dir
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.BackendTimeout == 0 {
		cfg.BackendTimeout = Duration(30 * time.Second)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Path resolves a path from the config file.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if ts := c.TokenService.URL; ts != "" {
		u, err := url.Parse(ts)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			bad("tokenService.url %q: want an https URL with no path, such as https://127.0.0.1:8443", ts)
		}
	} else if c.TokenService.EntraPublicHosts {
		bad("tokenService.entraPublicHosts needs tokenService.url: the token service Entra's URLs stand for")
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		bad("tls needs both certFile and keyFile")
	}
	if c.BackendTimeout < 0 {
		bad("backendTimeout %v is negative", time.Duration(c.BackendTimeout))
	}
	if len(c.Routes) == 0 {
		bad("no routes: add at least one {pathPrefix, backend, policy}")
	}
	prefixes := map[string]int{}
	for i, r := range c.Routes {
		where := fmt.Sprintf("routes[%d]", i)
		// Requests match prefixes case-insensitively, after normalization:
		// two prefixes equal then are one route.
		key := strings.ToLower(r.PathPrefix)
		if !strings.HasPrefix(r.PathPrefix, "/") {
			bad("%s.pathPrefix %q: want a path starting with /", where, r.PathPrefix)
		} else if norm, err := normalizePrefix(r.PathPrefix); err != nil {
			bad("%s.pathPrefix %q: %v", where, r.PathPrefix, err)
		} else {
			key = strings.ToLower(norm)
		}
		if j, dup := prefixes[key]; dup {
			bad("%s.pathPrefix %q repeats routes[%d] (prefixes match case-insensitively, after normalization)", where, r.PathPrefix, j)
		}
		prefixes[key] = i
		u, err := url.Parse(r.Backend)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			bad("%s.backend %q: want an http or https URL without a query", where, r.Backend)
		}
		if r.Policy == "" {
			bad("%s.policy is empty: name an APIM policy file", where)
		}
		if r.Name == "" {
			c.Routes[i].Name = r.PathPrefix
		}
	}
	for id, f := range c.Certificates {
		if id == "" || f == "" {
			bad("certificates: empty id or file")
		}
	}
	return errors.Join(errs...)
}

// LoadPolicies parses every route's policy file, reporting all errors.
func (c *Config) LoadPolicies() ([]*apim.Policy, error) {
	var errs []error
	pols := make([]*apim.Policy, len(c.Routes))
	for i, r := range c.Routes {
		p, err := apim.ParseFile(c.Path(r.Policy))
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", r.Name, err))
			continue
		}
		pols[i] = p
	}
	return pols, errors.Join(errs...)
}
