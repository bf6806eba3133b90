// Package wifclient is the consumer side of a token-protected API: an
// http.RoundTripper that gets access tokens from any azcore.TokenCredential
// (azidentity's WorkloadIdentityCredential, ManagedIdentityCredential,
// DefaultAzureCredential...), attaches them as "Authorization: Bearer", and
// handles the answers seed 001's provider API gives:
//
//   - 401 with WWW-Authenticate: Bearer error="invalid_token" (which covers
//     the token_expired case), or without a challenge but with a JSON body
//     {"error":"token_expired"|"invalid_token"}: get a fresh token, bypassing the
//     credential's cache, and retry once; a second 401 is returned to the
//     caller, never looped;
//   - 429 with Retry-After: wait and retry, up to a bound on the wait and
//     on the number of retries;
//   - every request carries an x-correlation-id (the caller's, or a new
//     one shared by the retries).
//
// Bypassing the cache: azcore's policy.TokenRequestOptions (azcore v1.24)
// has no force-refresh field. Its Claims field is the one that does it:
// MSAL, which azidentity's confidential-client credentials (workload
// identity, client assertion, secret, certificate) and
// ManagedIdentityCredential use, ignores cached access tokens when claims
// are given and stores the new token in their place. So the refresh asks
// for the token with the claims challenge of the 401 when it has one (a CAE
// challenge's claims="..."), else with the claims request Entra's own
// revocation challenges carry, {"access_token":{"nbf":{"essential":true,
// "value":"<now>"}}}, which Entra answers with a token issued after now and
// wif ignores. EnableCAE is not used: it selects another cache partition
// rather than bypassing one. A credential that refuses claims (the
// developer-tool credentials, e.g. AzureCLICredential) is asked again
// without them; if that returns the token that was just refused, the 401 is
// returned to the caller.
//
//	cred, _ := azidentity.NewWorkloadIdentityCredential(nil)
//	client := &http.Client{Transport: wifclient.New(cred, "api://provider-api/.default")}
//	resp, err := client.Get("https://provider.example/data")
package wifclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/wif-project/wif/internal/httpx"
)

// HeaderCorrelationID is the correlation header sent with every request.
const HeaderCorrelationID = "X-Correlation-Id"

// Defaults for the retry bounds.
const (
	DefaultMaxRetryAfter       = 30 * time.Second
	DefaultMaxRateLimitRetries = 2
)

// Transport attaches tokens from a credential to requests. Create it with
// New; it is safe for concurrent use.
type Transport struct {
	cred          azcore.TokenCredential
	scope         string
	base          http.RoundTripper
	maxRetryAfter time.Duration
	maxRetries    int
	allowHTTP     bool
	now           func() time.Time
	sleep         func(context.Context, time.Duration) error
}

// Option configures a Transport.
type Option func(*Transport)

// WithBase sends requests through rt (default http.DefaultTransport).
func WithBase(rt http.RoundTripper) Option { return func(t *Transport) { t.base = rt } }

// WithMaxRetryAfter bounds how long a 429's Retry-After may ask to wait; a
// longer wait returns the 429 to the caller (default 30 s).
func WithMaxRetryAfter(d time.Duration) Option { return func(t *Transport) { t.maxRetryAfter = d } }

// WithMaxRateLimitRetries bounds the retries after 429s of one request
// (default 2; 0 disables them).
func WithMaxRateLimitRetries(n int) Option { return func(t *Transport) { t.maxRetries = n } }

// WithClock sets the clock used for the claims request (default time.Now).
func WithClock(now func() time.Time) Option { return func(t *Transport) { t.now = now } }

// InsecureAllowHTTP lets tokens be sent over plain http. Anyone on the path
// can then read and replay them; use it only for loopback tests.
func InsecureAllowHTTP() Option { return func(t *Transport) { t.allowHTTP = true } }

// New returns a Transport that gets tokens for scope (e.g.
// "api://provider-api/.default") from cred.
func New(cred azcore.TokenCredential, scope string, opts ...Option) *Transport {
	t := &Transport{cred: cred, scope: scope, base: http.DefaultTransport, maxRetryAfter: DefaultMaxRetryAfter,
		maxRetries: DefaultMaxRateLimitRetries, now: time.Now, sleep: sleepCtx}
	for _, o := range opts {
		o(t)
	}
	return t
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// RoundTrip sends req with a bearer token, refreshing the token once after
// a 401 invalid_token and waiting out 429s within the bounds. It does not
// modify req. Retries need a replayable body (req.GetBody, which
// http.NewRequest sets for in-memory bodies); without one the first answer
// is returned.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !t.allowHTTP {
		return nil, fmt.Errorf("wifclient: refusing to send a bearer token over %s to %s: use https (or InsecureAllowHTTP for loopback tests)", req.URL.Scheme, req.URL.Host)
	}
	ctx := req.Context()
	corrID := req.Header.Get(HeaderCorrelationID)
	if corrID == "" {
		corrID = httpx.NewCorrelationID()
	}
	tok, err := t.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.scope}})
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("wifclient: get a token for %s: %w", t.scope, err)
	}
	first := true
	resp, err := t.send(req, tok.Token, corrID, first)
	if err != nil {
		return nil, err
	}
	refreshed, rateRetries := false, 0
	for {
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !refreshed && replayable(req):
			code, claims := challenge(resp.Header)
			if code == "" {
				code = bodyError(resp)
			}
			if code != "invalid_token" && code != "token_expired" {
				return resp, nil
			}
			refreshed = true
			fresh, ok := t.refresh(ctx, tok.Token, claims)
			if !ok {
				return resp, nil
			}
			tok.Token = fresh
		case resp.StatusCode == http.StatusTooManyRequests && rateRetries < t.maxRetries && replayable(req):
			wait, ok := retryAfter(resp.Header, t.now())
			if !ok || wait > t.maxRetryAfter {
				return resp, nil
			}
			rateRetries++
			drain(resp)
			if err := t.sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("wifclient: waiting %v after 429: %w", wait, err)
			}
			// The credential's cache makes this cheap, and picks up a
			// token renewed meanwhile.
			if again, err := t.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.scope}}); err == nil {
				tok.Token = again.Token
			}
			if resp, err = t.send(req, tok.Token, corrID, false); err != nil {
				return nil, err
			}
			continue
		default:
			return resp, nil
		}
		drain(resp)
		if resp, err = t.send(req, tok.Token, corrID, false); err != nil {
			return nil, err
		}
	}
}

// refresh gets a token other than old, bypassing the credential's cache.
func (t *Transport) refresh(ctx context.Context, old, claims string) (string, bool) {
	if claims == "" {
		claims = `{"access_token":{"nbf":{"essential":true,"value":"` + strconv.FormatInt(t.now().Unix(), 10) + `"}}}`
	}
	tok, err := t.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.scope}, Claims: claims})
	if err != nil {
		tok, err = t.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.scope}})
	}
	if err != nil || tok.Token == old {
		return "", false
	}
	return tok.Token, true
}

// send clones req with the token and correlation id; after the first send
// the body is re-obtained from GetBody.
func (t *Transport) send(req *http.Request, token, corrID string, first bool) (*http.Response, error) {
	out := req.Clone(req.Context())
	if !first && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("wifclient: rewind the request body for a retry: %w", err)
		}
		out.Body = body
	}
	out.Header.Set("Authorization", "Bearer "+token)
	out.Header.Set(HeaderCorrelationID, corrID)
	return t.base.RoundTrip(out)
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// drain reads a little of a response being discarded, so its connection
// can be reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// bodyError reads the "error" of a JSON 401 body ({"error":"token_expired"}),
// for APIs that answer without a Bearer challenge, and leaves the body
// readable for the caller.
func bodyError(resp *http.Response) string {
	if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return ""
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil {
		return ""
	}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(head, &body) != nil {
		return ""
	}
	return body.Error
}

// challenge reads the Bearer challenge's error code and decoded claims.
func challenge(h http.Header) (code, claims string) {
	for _, v := range h.Values("WWW-Authenticate") {
		if len(v) < 6 || !strings.EqualFold(v[:6], "bearer") {
			continue
		}
		params := parseParams(v[6:])
		code = params["error"]
		if c := params["claims"]; c != "" {
			if b, err := base64.StdEncoding.DecodeString(c); err == nil {
				claims = string(b)
			} else if b, err := base64.RawURLEncoding.DecodeString(c); err == nil {
				claims = string(b)
			}
		}
		return code, claims
	}
	return "", ""
}

// parseParams reads auth-params: name="quoted \" value", name=token.
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,\t")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return out
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, `"`) {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			s = s[min(i+1, len(s)):]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		out[name] = val.String()
	}
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, at.Sub(now)), true
	}
	return 0, false
}

var _ http.RoundTripper = (*Transport)(nil)
