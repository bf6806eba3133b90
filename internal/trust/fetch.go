package trust

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// newClient returns the client fetches use: a copy of base (or a fresh
// client) that follows redirects only within the same scheme and host,
// keeps no cookies, and times out within fetchTimeout.
func newClient(base *http.Client, fetchTimeout time.Duration, guard *AddressGuard) *http.Client {
	var cl http.Client
	if base != nil {
		cl = *base
	} else {
		cl.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: fetchTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   2,
			ForceAttemptHTTP2:     true,
		}
	}
	cl.Jar = nil
	cl.CheckRedirect = checkRedirect
	if cl.Timeout <= 0 || cl.Timeout > fetchTimeout {
		cl.Timeout = fetchTimeout
	}
	if guard != nil {
		return guardClient(&cl, guard)
	}
	return &cl
}

// checkRedirect allows at most MaxRedirects redirects, all to the scheme
// and host (with port) of the first request.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("%w: %s redirected to %s; only redirects within %s://%s are followed",
			ErrRedirectRefused, via[len(via)-1].URL.Redacted(), req.URL.Redacted(), first.Scheme, first.Host)
	}
	if len(via) > MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, MaxRedirects)
	}
	return nil
}

// fetch reads src's discovery document and then its key set.
func (c *Cache) fetch(src Source) (*keySet, *FetchError) {
	if !c.allowed(src) {
		return nil, c.notAllowed(src)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	defer cancel()

	body, _, ferr := c.get(ctx, src, src.DiscoveryURL)
	if ferr != nil {
		return nil, ferr
	}
	doc, err := parseDiscovery(body)
	if err != nil {
		return nil, &FetchError{Source: src, URL: src.DiscoveryURL, Err: err}
	}
	if src.Issuer != "" && doc.Issuer != src.Issuer {
		return nil, &FetchError{Source: src, URL: src.DiscoveryURL, Err: issuerMismatch(src.DiscoveryURL, doc.Issuer, src.Issuer)}
	}

	body, hdr, ferr := c.get(ctx, src, doc.JWKSURI)
	if ferr != nil {
		return nil, ferr
	}
	parsed, err := parseJWKS(body, c.opts.MaxKeys)
	if err != nil {
		return nil, &FetchError{Source: src, URL: doc.JWKSURI, Err: err}
	}
	if len(parsed.skipped) > 0 {
		c.logger.Info("trust: skipped keys of a key set", "url", doc.JWKSURI, "kept", len(parsed.keys), "skipped", parsed.skipped)
	}
	if len(parsed.keys) == 0 {
		why := "it is empty"
		if len(parsed.skipped) > 0 {
			why = strings.Join(parsed.skipped, "; ")
		}
		return nil, &FetchError{Source: src, URL: doc.JWKSURI, Err: fmt.Errorf("the key set has no usable RSA, EC or Ed25519 signing key: %s", why)}
	}
	maxAge, ok := parseMaxAge(hdr)
	return c.newKeySet(parsed.keys, Metadata{Issuer: doc.Issuer, JWKSURI: doc.JWKSURI}, c.ttl(maxAge, ok)), nil
}

// issuerMismatch explains a discovery document naming another issuer.
func issuerMismatch(url, got, want string) error {
	note := ""
	if strings.TrimSuffix(got, "/") == strings.TrimSuffix(want, "/") {
		note = " (note the trailing '/': issuers are compared exactly)"
	} else if strings.EqualFold(got, want) {
		note = " (issuers are compared case-sensitively)"
	}
	return fmt.Errorf("%w: discovery document at %s says issuer %q, expected %q%s", ErrIssuerMismatch, url, got, want, note)
}

// get fetches url (https only) and returns its body, at most
// MaxResponseBytes; any status but 200 is an error.
func (c *Cache) get(ctx context.Context, src Source, url string) ([]byte, http.Header, *FetchError) {
	fail := func(status int, err error) ([]byte, http.Header, *FetchError) {
		return nil, nil, &FetchError{Source: src, URL: url, StatusCode: status, Err: err}
	}
	if err := checkHTTPS(url); err != nil {
		return fail(0, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fail(0, fmt.Errorf("building the request: %w", err))
	}
	// kube-apiserver negotiates: its JWKS is application/jwk-set+json and
	// it answers 406 to a request that accepts only application/json.
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	req.Header.Set("User-Agent", "wif-trust/1 (OIDC key cache)")
	client, err := c.clientFor(src)
	if err != nil {
		return fail(0, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(0, c.transportError(ctx, err))
	}
	defer resp.Body.Close()
	limit := c.opts.MaxResponseBytes
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // let the connection be reused
		return fail(resp.StatusCode, fmt.Errorf("HTTP status %s, expected 200 OK", resp.Status))
	}
	if resp.ContentLength > limit {
		return fail(0, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d bytes", ErrResponseTooLarge, resp.ContentLength, limit))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fail(0, fmt.Errorf("reading the response: %w", c.transportError(ctx, err)))
	}
	if int64(len(body)) > limit {
		return fail(0, fmt.Errorf("%w: the body exceeds the limit of %d bytes", ErrResponseTooLarge, limit))
	}
	return body, resp.Header, nil
}

// transportError names timeouts and cancellation plainly; other errors
// (TLS, connection refused, refused redirects) pass through.
func (c *Cache) transportError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrRedirectRefused):
		return err
	case c.ctx.Err() != nil:
		return fmt.Errorf("the cache was closed: %w", err)
	case ctx.Err() == context.DeadlineExceeded, isTimeout(err):
		return fmt.Errorf("no complete response within %s: %w", c.opts.FetchTimeout, context.DeadlineExceeded)
	}
	return err
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
