// Package console serves wif's web console: static pages embedded in the
// binary and a same-origin proxy to the admin API that adds the CLI's own
// credentials, as kubectl proxy does — no login system of its own and no
// secret in the browser.
//
// A console on loopback holding an admin's credentials is a target for any
// web page the admin's browser opens, so the proxy answers only requests
// that carry the session token the console printed (in a header no other
// origin can set without a preflight the proxy never grants), whose Host is
// the console's own loopback address (no DNS rebinding) and whose Origin,
// when sent, is the console's own.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// TokenHeader carries the session token on every API call of the page.
const TokenHeader = "X-Wif-Console-Token"

// Session describes what the console's credentials may do, for the page
// to hide what it cannot do.
type Session struct {
	Server   string   `json:"server"`
	TenantID string   `json:"tenantId"`
	ClientID string   `json:"clientId,omitempty"`
	Roles    []string `json:"roles"`
	// CanWrite is false for read-only credentials: the page hides every
	// write action.
	CanWrite bool `json:"canWrite"`
	// Unrestricted: no token (wif dev's loopback admin API).
	Unrestricted bool `json:"unrestricted"`
}

// Config configures the console.
type Config struct {
	// AdminURL is the token service's URL (the admin API is under /admin).
	AdminURL *url.URL
	// Transport reaches it (trusting its CA).
	Transport http.RoundTripper
	// Token returns the bearer token for api://wif-admin; nil sends none.
	Token   func(ctx context.Context) (string, error)
	Session Session
	// SessionToken is the secret the page must send; empty: one is made.
	SessionToken string
	// CheckIssuer is the CLI's issuer pre-check (the issuer's discovery
	// document names another issuer, a trailing '/' say): a warning, or
	// "" when all is well or it cannot tell. Nil: no pre-check.
	CheckIssuer func(ctx context.Context, issuer string) string
	Logger      *slog.Logger
}

// Console is the console's HTTP handler.
type Console struct {
	cfg   Config
	token string
	proxy *httputil.ReverseProxy
	files http.Handler
	// host is the only Host header accepted (set by Serve / SetAddr).
	host string
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.AdminURL == nil {
		return nil, errors.New("console: AdminURL is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tok := cfg.SessionToken
	if tok == "" {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		tok = base64.RawURLEncoding.EncodeToString(b[:])
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, token: tok, files: http.FileServerFS(sub)}
	target := cfg.AdminURL
	c.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.URL.Path = "/admin" + strings.TrimPrefix(pr.In.URL.Path, "/api")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = target.Host
			// Nothing of the browser's goes on: no cookies, no origin.
			for _, h := range []string{"Cookie", "Origin", "Referer", TokenHeader, "Authorization"} {
				pr.Out.Header.Del(h)
			}
			if cfg.Token != nil {
				t, err := cfg.Token(pr.In.Context())
				if err == nil && t != "" {
					pr.Out.Header.Set("Authorization", "Bearer "+t)
				}
			}
		},
		Transport: cfg.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Logger.Warn("console: admin API unreachable", "error", err)
			writeError(w, http.StatusBadGateway, "BadGateway", "the token service's admin API did not answer: "+err.Error())
		},
	}
	return c, nil
}

// Token is the session token: the console's URL carries it once.
func (c *Console) Token() string { return c.token }

// SetAddr fixes the address the console is served on: requests naming
// another Host are refused.
func (c *Console) SetAddr(addr string) { c.host = addr }

// URL is the address to open, with the session token in the fragment (it
// never reaches a server log or a Referer).
func (c *Console) URL() string { return "http://" + c.host + "/#token=" + c.token }

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if c.host != "" && !strings.EqualFold(r.Host, c.host) {
		// DNS rebinding: a page on evil.example resolving to 127.0.0.1.
		writeError(w, http.StatusMisdirectedRequest, "WrongHost", fmt.Sprintf("this console answers for %s only", c.host))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+c.host {
		writeError(w, http.StatusForbidden, "CrossOrigin", "requests from other origins are refused")
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/session" && r.URL.Path != "/status" && r.URL.Path != "/precheck" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the console's pages are read with GET")
			return
		}
		switch r.URL.Path {
		case "/", "/index.html", "/app.js", "/app.css":
		default:
			writeError(w, http.StatusNotFound, "NotFound", "the console has no page "+strconvQuote(r.URL.Path)+"; views are under /#/")
			return
		}
		h.Set("Cache-Control", "no-store")
		c.files.ServeHTTP(w, r)
		return
	}
	// The proxy forwards under /admin only: no "..", no "//", no
	// encoded variant of them walks it to another path of the service.
	if path.Clean(r.URL.Path) != r.URL.Path || strings.Contains(r.URL.RawPath, "%") && path.Clean(r.URL.RawPath) != r.URL.RawPath {
		writeError(w, http.StatusBadRequest, "BadPath", "the path must be clean (no '..', '.' or '//' segments)")
		return
	}
	got := r.Header.Get(TokenHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.token)) != 1 {
		writeError(w, http.StatusUnauthorized, "ConsoleToken", "open the console with the URL wif console printed (it carries the session token)")
		return
	}
	switch r.URL.Path {
	case "/session":
		h.Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.cfg.Session)
		return
	case "/status":
		c.status(w, r)
		return
	case "/precheck":
		warning := ""
		if iss := r.URL.Query().Get("issuer"); c.cfg.CheckIssuer != nil && strings.HasPrefix(iss, "https://") && len(iss) <= 600 {
			warning = c.cfg.CheckIssuer(r.Context(), iss)
		}
		h.Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"warning": warning})
		return
	}
	if !c.cfg.Session.CanWrite && r.Method != http.MethodGet && !strings.HasSuffix(r.URL.Path, "/testFederatedCredentials") {
		writeError(w, http.StatusForbidden, "ReadOnly", "the console's credentials may read only (they hold no role that changes the directory)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	c.proxy.ServeHTTP(w, r)
}

func strconvQuote(s string) string {
	if len(s) > 80 {
		s = s[:80]
	}
	return strconv.Quote(s)
}

// status relays the token service's readiness (/readyz: its store and
// signing key), for the Health view.
func (c *Console) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	u := *c.cfg.AdminURL
	u.Path = "/readyz"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	out := map[string]any{"ready": false}
	rt := c.cfg.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		out["detail"] = "the token service did not answer: " + err.Error()
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		out["ready"] = resp.StatusCode == http.StatusOK
		out["detail"] = strings.TrimSpace(string(b))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Serve serves the console on ln until ctx ends.
func (c *Console) Serve(ctx context.Context, ln net.Listener) error {
	c.SetAddr(ln.Addr().String())
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}
