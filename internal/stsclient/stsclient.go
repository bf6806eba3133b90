// Package stsclient performs the federated exchange at a token service that
// speaks Entra ID's protocol (wif's own, or Entra itself): it posts the
// workload's external token as a client assertion in a client_credentials
// grant and returns the access token.
//
// It is the client half of spec/sts.md §1: `wif imds` uses it to get tokens
// on a workload's behalf, and `wif token get` to get one for a person at a
// terminal. The assertion (a projected service-account token file, usually)
// is read on every exchange because the kubelet rotates it.
//
//	c, err := stsclient.New(stsclient.Config{
//		AuthorityHost: "https://wif.example/",
//		TenantID:      "72f988bf-86f1-41af-91ab-2d7cd011db47",
//		TokenFile:     "/var/run/secrets/azure/tokens/azure-identity-token",
//		HTTPClient:    stsclient.NewHTTPClient(pool),
//	})
//	tok, err := c.Exchange(ctx, clientID, "api://provider-api/.default")
//
// Failures are typed so callers can pass them on: *ResponseError (the token
// service answered with an OAuth error), *TransportError (it could not be
// reached or did not answer in time), *AssertionError (the token file could
// not be read) and ErrMalformedResponse (it answered 2xx with something that
// is not a token response).
package stsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/httpx"
)

// ClientAssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Defaults for Config's zero values.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	// MaxAssertionBytes bounds the token file: the token service accepts
	// assertions up to 16 KiB (spec/sts.md §4); a bigger file is not a token.
	MaxAssertionBytes = 64 << 10
)

// ErrMalformedResponse means the token service answered 2xx with a body that
// is not a usable token response (not JSON, no access_token, no lifetime).
var ErrMalformedResponse = errors.New("stsclient: malformed token response")

// Config configures a Client.
type Config struct {
	// AuthorityHost is the token service's base URL, as in
	// AZURE_AUTHORITY_HOST ("https://login.microsoftonline.com/"). It must be
	// https, like the Azure SDKs require; a trailing '/' is optional.
	AuthorityHost string
	// TenantID is the tenant (a GUID or a domain name) whose token endpoint
	// is called: {AuthorityHost}/{TenantID}/oauth2/v2.0/token.
	TenantID string
	// TokenFile is the file holding the workload's external token (the
	// assertion), read on every exchange. Either TokenFile or Assertion.
	TokenFile string
	// Assertion, when set, supplies the assertion instead of TokenFile.
	Assertion func(ctx context.Context) (string, error)
	// HTTPClient sends the requests (default: NewHTTPClient(nil)).
	HTTPClient *http.Client
	// Timeout bounds one exchange, including reading the answer (default 30 s).
	Timeout time.Duration
	// MaxResponseBytes bounds the answer's body (default 1 MiB).
	MaxResponseBytes int64
	// Now is the clock used to turn expires_in into an instant (default time.Now).
	Now func() time.Time
	// UserAgent is sent as User-Agent (default "wif-stsclient").
	UserAgent string
}

// Client exchanges assertions for access tokens. It is safe for concurrent use.
type Client struct {
	endpoint   string
	tokenFile  string
	assertion  func(ctx context.Context) (string, error)
	httpClient *http.Client
	timeout    time.Duration
	maxBody    int64
	now        func() time.Time
	userAgent  string
}

// Token is an access token issued by the token service.
type Token struct {
	// AccessToken is the token itself. Never log it.
	AccessToken string
	// TokenType is the token_type the service gave ("Bearer").
	TokenType string
	// ObtainedAt is when the request was sent (before the service issued the
	// token, so ExpiresOn errs on the early side).
	ObtainedAt time.Time
	// ExpiresOn is ObtainedAt plus expires_in.
	ExpiresOn time.Time
	// RefreshOn is ObtainedAt plus refresh_in, or zero when the service sent none.
	RefreshOn time.Time
}

// ResponseError is an error answer from the token service: its HTTP status
// and the OAuth error fields of its JSON body (empty when the body was not
// JSON), so a caller can pass them through unchanged.
type ResponseError struct {
	StatusCode    int
	ErrorCode     string // "error", e.g. "invalid_client"
	Description   string // "error_description"
	ErrorCodes    []int  // "error_codes", e.g. [700213]
	TraceID       string
	CorrelationID string
	Timestamp     string
	ErrorURI      string
	// RetryAfter is the Retry-After header, if any.
	RetryAfter string
	// Body is the start of a body that was not a JSON error (for diagnostics).
	Body string
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token service answered %d", e.StatusCode)
	if e.ErrorCode != "" {
		fmt.Fprintf(&b, " %s", e.ErrorCode)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	} else if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	return b.String()
}

// TransportError means the token service could not be reached, or did not
// answer within the timeout.
type TransportError struct {
	Endpoint string
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("token service at %s could not be reached: %v", e.Endpoint, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Timeout reports whether the request timed out (rather than being refused).
func (e *TransportError) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// AssertionError means the assertion could not be obtained (the token file
// is missing, unreadable, empty or too big).
type AssertionError struct {
	Path string
	Err  error
}

func (e *AssertionError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("get client assertion: %v", e.Err)
	}
	return fmt.Sprintf("read federated token file %s: %v", e.Path, e.Err)
}

func (e *AssertionError) Unwrap() error { return e.Err }

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	var problems []string
	u, err := url.Parse(cfg.AuthorityHost)
	switch {
	case cfg.AuthorityHost == "":
		problems = append(problems, "the authority host is empty (set AZURE_AUTHORITY_HOST or --authority-host to the token service's https URL)")
	case err != nil:
		problems = append(problems, fmt.Sprintf("the authority host %q is not a URL: %v", cfg.AuthorityHost, err))
	case u.Scheme != "https" || u.Host == "":
		problems = append(problems, fmt.Sprintf("the authority host %q must be an https URL with a host, like https://login.microsoftonline.com/", cfg.AuthorityHost))
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		problems = append(problems, fmt.Sprintf("the authority host %q must not have a query, fragment or user info", cfg.AuthorityHost))
	}
	if !tenantRE.MatchString(cfg.TenantID) {
		problems = append(problems, fmt.Sprintf("the tenant id %q is not a GUID or domain name (set AZURE_TENANT_ID or --tenant-id)", cfg.TenantID))
	}
	if cfg.TokenFile == "" && cfg.Assertion == nil {
		problems = append(problems, "no federated token file is configured (set AZURE_FEDERATED_TOKEN_FILE or --token-file)")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("stsclient: %s", strings.Join(problems, "; "))
	}
	c := &Client{
		endpoint:   strings.TrimSuffix(cfg.AuthorityHost, "/") + "/" + cfg.TenantID + "/oauth2/v2.0/token",
		tokenFile:  cfg.TokenFile,
		assertion:  cfg.Assertion,
		httpClient: cfg.HTTPClient,
		timeout:    cfg.Timeout,
		maxBody:    cfg.MaxResponseBytes,
		now:        cfg.Now,
		userAgent:  cfg.UserAgent,
	}
	if c.httpClient == nil {
		c.httpClient = NewHTTPClient(nil)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = "wif-stsclient"
	}
	return c, nil
}

// Endpoint is the token endpoint the client posts to.
func (c *Client) Endpoint() string { return c.endpoint }

// NewHTTPClient returns an HTTP client for talking to a token service:
// TLS 1.2+, trusting rootCAs (nil = the system roots), bounded dial, TLS
// handshake and header timeouts, and no redirects (a token POST that is
// redirected is a misconfiguration, not something to follow).
func NewHTTPClient(rootCAs *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// LoadCAFile reads a PEM bundle into a pool holding the system roots plus
// the bundle's certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ReadAssertion reads and trims the token file at path, bounded to
// MaxAssertionBytes.
func ReadAssertion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", &AssertionError{Path: path, Err: err}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxAssertionBytes+1))
	if err != nil {
		return "", &AssertionError{Path: path, Err: err}
	}
	if len(b) > MaxAssertionBytes {
		return "", &AssertionError{Path: path, Err: fmt.Errorf("file is over %d bytes; it does not hold a token", MaxAssertionBytes)}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", &AssertionError{Path: path, Err: errors.New("file is empty (has the kubelet written the projected token yet?)")}
	}
	return s, nil
}

// Exchange gets an access token for clientID and scope (a single
// "<resource>/.default") by presenting the current assertion.
func (c *Client) Exchange(ctx context.Context, clientID, scope string) (*Token, error) {
	if clientID == "" {
		return nil, errors.New("stsclient: exchange: the client id is empty")
	}
	if scope == "" {
		return nil, errors.New("stsclient: exchange: the scope is empty")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	assertion, err := c.getAssertion(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"client_assertion_type": {ClientAssertionType},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("stsclient: build request to %s: %w", c.endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("client-request-id", httpx.NewCorrelationID())
	req.Header.Set("return-client-request-id", "true")

	sent := c.now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, &TransportError{Endpoint: c.endpoint, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, &TransportError{Endpoint: c.endpoint, Err: fmt.Errorf("read answer: %w", err)}
	}
	if int64(len(body)) > c.maxBody {
		if resp.StatusCode/100 == 2 {
			return nil, fmt.Errorf("%w: the answer from %s is over %d bytes", ErrMalformedResponse, c.endpoint, c.maxBody)
		}
		body = body[:c.maxBody]
	}
	if resp.StatusCode/100 != 2 {
		return nil, parseError(resp, body)
	}
	return parseToken(body, sent)
}

func (c *Client) getAssertion(ctx context.Context) (string, error) {
	if c.assertion != nil {
		s, err := c.assertion(ctx)
		if err != nil {
			return "", &AssertionError{Err: err}
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return "", &AssertionError{Err: errors.New("the assertion is empty")}
		}
		return s, nil
	}
	return ReadAssertion(c.tokenFile)
}

// flexInt decodes a JSON number or a string holding one (Entra's v1
// endpoint sends expires_in as a string, v2 as a number).
type flexInt struct {
	v   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	f.v, f.set = v, true
	return nil
}

func parseToken(body []byte, sent time.Time) (*Token, error) {
	var raw struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   flexInt `json:"expires_in"`
		RefreshIn   flexInt `json:"refresh_in"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	if raw.AccessToken == "" {
		return nil, fmt.Errorf("%w: no access_token", ErrMalformedResponse)
	}
	if !raw.ExpiresIn.set || raw.ExpiresIn.v <= 0 || raw.ExpiresIn.v > 100*24*3600 {
		return nil, fmt.Errorf("%w: expires_in missing or out of range", ErrMalformedResponse)
	}
	if raw.TokenType == "" {
		raw.TokenType = "Bearer"
	}
	t := &Token{
		AccessToken: raw.AccessToken,
		TokenType:   raw.TokenType,
		ObtainedAt:  sent,
		ExpiresOn:   sent.Add(time.Duration(raw.ExpiresIn.v) * time.Second),
	}
	if raw.RefreshIn.set && raw.RefreshIn.v > 0 && raw.RefreshIn.v < raw.ExpiresIn.v {
		t.RefreshOn = sent.Add(time.Duration(raw.RefreshIn.v) * time.Second)
	}
	return t, nil
}

func parseError(resp *http.Response, body []byte) *ResponseError {
	e := &ResponseError{StatusCode: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	var raw struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		ErrorCodes    []int  `json:"error_codes"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
		Timestamp     string `json:"timestamp"`
		ErrorURI      string `json:"error_uri"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || raw.Error == "" {
		const max = 512
		s := strings.TrimSpace(string(body))
		if len(s) > max {
			s = s[:max] + "..."
		}
		e.Body = s
		return e
	}
	e.ErrorCode, e.Description, e.ErrorCodes = raw.Error, raw.Description, raw.ErrorCodes
	e.TraceID, e.CorrelationID, e.Timestamp, e.ErrorURI = raw.TraceID, raw.CorrelationID, raw.Timestamp, raw.ErrorURI
	return e
}
