package trust

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAddressGuard: with the guard, fetches to loopback (by address or by
// a name resolving to it), link-local (the cloud metadata address),
// private and unspecified addresses are refused at connect time, naming
// the rule and the switch; AllowPrivate lets them through; a redirect
// cannot lead a fetch to a refused address.
func TestAddressGuard(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	u, _ := url.Parse(ti.srv.URL)
	port := u.Port()
	guarded := func(g *AddressGuard) *Cache {
		c, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) { o.Guard = g; o.Allow = nil; o.FetchTimeout = 3 * time.Second })
		return c
	}
	c := guarded(&AddressGuard{})
	for _, tc := range []struct{ name, host, rule string }{
		{"loopback address", "127.0.0.1:" + port, "a loopback address (127.0.0.0/8)"},
		{"a name that resolves to loopback", "localhost:" + port, "a loopback address"},
		{"cloud metadata", "169.254.169.254", "a link-local address (169.254.0.0/16, where cloud metadata services live)"},
		{"private 10/8", "10.0.0.1", "a private address (10.0.0.0/8)"},
		{"private 192.168/16", "192.168.1.1", "a private address (192.168.0.0/16)"},
		{"unspecified", "0.0.0.0:" + port, "an unspecified address"},
		{"IPv6 loopback", "[::1]:" + port, "a loopback address (::1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			fe := fetchErr(t, c, Source{DiscoveryURL: "https://" + tc.host + "/.well-known/openid-configuration", Issuer: "https://" + tc.host})
			if !errors.Is(fe, ErrAddressRefused) || !strings.Contains(fe.Error(), tc.rule) || !strings.Contains(fe.Error(), "--allow-private-issuers") {
				t.Fatalf("%v", fe)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("refused only after %s: the check must come before connecting", time.Since(start))
			}
		})
	}
	if d, j := ti.counts(); d != 0 || j != 0 {
		t.Fatalf("the issuer got %d+%d requests through the guard", d, j)
	}
	// AllowPrivate: the same loopback issuer works.
	if _, err := guarded(&AddressGuard{AllowPrivate: true}).Key(ctxT(t), ti.source(), "k1"); err != nil {
		t.Fatalf("AllowPrivate: %v", err)
	}
	// A redirect from an allowed address to a refused one is refused: the
	// first hop is let through by the test hook, the redirect's target is
	// not (another loopback address, so it is refused by the guard even
	// before the same-host redirect rule).
	ti.route("/away/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://127.0.0.2:"+port+"/.well-known/openid-configuration", http.StatusFound)
	})
	first := netip.MustParseAddrPort("127.0.0.1:" + port)
	cr := guarded(&AddressGuard{allow: func(ap netip.AddrPort) bool { return ap == first }})
	fe := fetchErr(t, cr, Source{DiscoveryURL: ti.srv.URL + "/away/.well-known/openid-configuration", Issuer: ti.srv.URL})
	if !errors.Is(fe, ErrRedirectRefused) && !errors.Is(fe, ErrAddressRefused) {
		t.Fatalf("redirect to a refused address: %v", fe)
	}
	// A transport the guard cannot wrap fails closed.
	cc, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) {
		o.Guard, o.Allow = &AddressGuard{}, nil
		o.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) { return http.DefaultTransport.RoundTrip(r) })}
	})
	if fe := fetchErr(t, cc, Source{DiscoveryURL: "https://93.184.216.34/.well-known/openid-configuration", Issuer: "https://93.184.216.34"}); !errors.Is(fe, ErrAddressRefused) {
		t.Fatalf("unguardable transport: %v", fe)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRefusedRule(t *testing.T) {
	for ip, want := range map[string]bool{
		"8.8.8.8": false, "1.1.1.1": false, "2606:4700::1111": false, "172.32.0.1": false, "100.128.0.1": false,
		"127.0.0.53": true, "::ffff:127.0.0.1": true, "169.254.169.254": true, "fe80::1": true, "10.1.2.3": true,
		"172.16.0.1": true, "172.31.255.255": true, "192.168.0.1": true, "fd00::1": true, "100.64.0.1": true, "0.0.0.0": true, "::": true, "224.0.0.1": true,
	} {
		if got := refusedRule(netip.MustParseAddr(ip)) != ""; got != want {
			t.Errorf("%s refused = %v, want %v", ip, got, want)
		}
	}
}

// TestAddressGuardThroughProxy: with a proxy configured the dialled
// address is the proxy's, so the issuer's own host is checked before the
// request is handed to the proxy — a private issuer is refused and the
// proxy never sees the request.
func TestAddressGuardThroughProxy(t *testing.T) {
	var proxied int
	proxy := httptestProxy(t, &proxied)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse(proxy) }
	// The proxy itself is on loopback: let the guard dial it, as an
	// installation with a proxy on its network would.
	pu, _ := url.Parse(proxy)
	proxyAddr := netip.MustParseAddrPort(pu.Host)
	g := &AddressGuard{allow: func(ap netip.AddrPort) bool { return ap == proxyAddr }}
	cl := guardClient(&http.Client{Transport: tr, Timeout: 3 * time.Second}, g)
	for _, target := range []string{"https://10.1.2.3/.well-known/openid-configuration", "https://169.254.169.254/latest/meta-data", "https://localhost:8443/x"} {
		_, err := cl.Get(target)
		if !errors.Is(err, ErrAddressRefused) {
			t.Errorf("%s through the proxy: %v", target, err)
		}
	}
	if proxied != 0 {
		t.Fatalf("the proxy got %d requests", proxied)
	}
}

// httptestProxy is a plain HTTP proxy that only counts what reaches it.
func httptestProxy(t *testing.T, n *int) string {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*n++
		mu.Unlock()
		http.Error(w, "no", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
