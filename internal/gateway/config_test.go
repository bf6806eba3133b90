package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
listen: 127.0.0.1:9090
tokenService: {url: "https://127.0.0.1:8443", caFile: ca.pem, entraPublicHosts: true}
backendTimeout: 5s
routes:
- {pathPrefix: /orders/, backend: "http://127.0.0.1:9000/", policy: policy.xml}
`), "/etc/wif")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9090" || cfg.Routes[0].Name != "/orders/" || time.Duration(cfg.BackendTimeout) != 5*time.Second ||
		cfg.Path(cfg.TokenService.CAFile) != "/etc/wif/ca.pem" || !cfg.TokenService.EntraPublicHosts {
		t.Errorf("config = %+v", cfg)
	}
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "routes: []\nlisten2: x", `invalid gateway config: error unmarshaling JSON: while decoding JSON: json: unknown field "listen2"`},
		{"everything wrong at once", `
tokenService: {url: "http://x/path", entraPublicHosts: true}
tls: {certFile: a}
routes:
- {pathPrefix: orders, backend: "ftp://x", policy: ""}
- {pathPrefix: orders, backend: "http://x", policy: p.xml}
`, `tokenService.url "http://x/path": want an https URL with no path, such as https://127.0.0.1:8443
tls needs both certFile and keyFile
routes[0].pathPrefix "orders": want a path starting with /
routes[0].backend "ftp://x": want an http or https URL without a query
routes[0].policy is empty: name an APIM policy file
routes[1].pathPrefix "orders": want a path starting with /
routes[1].pathPrefix "orders" repeats routes[0] (prefixes match case-insensitively, after normalization)`},
		{"no routes", "listen: x", "no routes: add at least one {pathPrefix, backend, policy}"},
		{"entra hosts without url", "tokenService: {entraPublicHosts: true}\nroutes: [{pathPrefix: /, backend: 'http://x', policy: p}]",
			"tokenService.entraPublicHosts needs tokenService.url: the token service Entra's URLs stand for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml), "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("err:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestOpenReportsPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.xml"), []byte("<policies>\n<inbound>\n<foo/>\n</inbound>\n</policies>"), 0o600)
	os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte("routes:\n- {name: a, pathPrefix: /, backend: 'http://127.0.0.1:1', policy: bad.xml}\n- {name: b, pathPrefix: /b/, backend: 'http://127.0.0.1:1', policy: missing.xml}\n"), 0o600)
	cfg, err := LoadConfig(filepath.Join(dir, "gw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "route a: bad.xml:3: unknown element <foo> in <inbound>\nroute b: read policy: open ") {
		t.Errorf("err = %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("routes:\n- {pathPrefix: /, backend: 'http://127.0.0.1:9000', policy: p.xml}\n"))
	f.Add([]byte("tokenService: {url: 'https://127.0.0.1:8443', entraPublicHosts: true}\nroutes: []"))
	f.Add([]byte("backendTimeout: 5s\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, "")
		if err == nil && (cfg == nil || len(cfg.Routes) == 0) {
			t.Fatal("accepted a config without routes")
		}
	})
}
