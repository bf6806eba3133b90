package trust

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrAddressRefused is wrapped by the error of a fetch whose connection
// would reach an address issuer fetches must not reach.
var ErrAddressRefused = errors.New("address refused")

// AddressGuard keeps issuer fetches off the token service's own network:
// a credential's issuer is chosen by a tenant admin, and without a guard
// its discovery URL could point the token service at a cloud metadata
// endpoint (169.254.169.254), its own admin port or any internal service.
// The check runs on the resolved address of every connection, at connect
// time (a dialer Control hook), so neither a DNS name that resolves to a
// private address nor a redirect gets past it.
type AddressGuard struct {
	// AllowPrivate lets fetches reach loopback, link-local and private
	// addresses (wif serve --allow-private-issuers: single-tenant
	// installations whose issuers live on the internal network).
	AllowPrivate bool
	// allow, in tests, lets through the addresses it accepts.
	allow func(netip.AddrPort) bool
}

// refusedRanges are the ranges refused unless AllowPrivate, with how the
// refusal names them.
var refusedRanges = []struct {
	prefix netip.Prefix
	rule   string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address (127.0.0.0/8)"},
	{netip.MustParsePrefix("::1/128"), "a loopback address (::1)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (169.254.0.0/16, where cloud metadata services live)"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address (fe80::/10)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address (10.0.0.0/8)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address (172.16.0.0/12)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address (192.168.0.0/16)"},
	{netip.MustParsePrefix("fc00::/7"), "a private address (fc00::/7)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared address (100.64.0.0/10, carrier-grade NAT)"},
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address (0.0.0.0/8)"},
	{netip.MustParsePrefix("::/128"), "an unspecified address (::)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address (224.0.0.0/4)"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address (ff00::/8)"},
}

// refusedRule names the range ip is in, or "" when fetches may reach it.
func refusedRule(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, r := range refusedRanges {
		if r.prefix.Contains(ip) {
			return r.rule
		}
	}
	return ""
}

// control is the dialer's Control hook: address is the resolved ip:port.
func (g *AddressGuard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check %q", ErrAddressRefused, address)
	}
	if g.AllowPrivate || (g.allow != nil && g.allow(ap)) {
		return nil
	}
	if rule := refusedRule(ap.Addr()); rule != "" {
		return fmt.Errorf("%w: %s is %s; issuer fetches do not reach loopback, link-local or private addresses "+
			"(start wif serve with --allow-private-issuers where issuers live on the internal network)", ErrAddressRefused, ap, rule)
	}
	return nil
}

// checkHost resolves host and refuses it when any of its addresses is one
// fetches must not reach (for requests sent through a proxy).
func (g *AddressGuard) checkHost(ctx context.Context, host, port string) error {
	if port == "" {
		port = "443"
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: resolve %s: %v", ErrAddressRefused, host, err)
	}
	for _, a := range addrs {
		if err := g.control("tcp", net.JoinHostPort(a.Unmap().String(), port), nil); err != nil {
			return err
		}
	}
	return nil
}

// guardClient returns a copy of cl whose connections pass g's check. A
// transport that is not an *http.Transport cannot be guarded: its fetches
// are refused.
func guardClient(cl *http.Client, g *AddressGuard) *http.Client {
	out := *cl
	var tr *http.Transport
	switch t := cl.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		out.Transport = refuseAll{}
		return &out
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	tr.DialContext = d.DialContext
	tr.DialTLSContext = nil
	// Through a proxy (HTTPS_PROXY) the dialled address is the proxy's and
	// the proxy reaches the issuer: check the issuer's host itself, as it
	// resolves here, before the request is handed to the proxy.
	if proxy := tr.Proxy; proxy != nil {
		tr.Proxy = func(r *http.Request) (*url.URL, error) {
			u, err := proxy(r)
			if err != nil || u == nil {
				return u, err
			}
			if err := g.checkHost(r.Context(), r.URL.Hostname(), r.URL.Port()); err != nil {
				return nil, err
			}
			return u, nil
		}
	}
	out.Transport = tr
	return &out
}

type refuseAll struct{}

func (refuseAll) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("%w: the issuer HTTP client's transport cannot be guarded", ErrAddressRefused)
}
