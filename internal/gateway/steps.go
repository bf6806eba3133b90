package gateway

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/tokenauth"
)

// reply is a response the gateway writes itself (a refusal, a
// return-response, a backend failure) instead of the backend's.
type reply struct {
	status int
	header http.Header
	body   []byte
	// reason labels refusals in metrics ("" for a return-response).
	reason string
	// err marks an error reply: the route's on-error steps run over it.
	err bool
}

// apimBody is APIM's error body, with seed 001's OAuth fields when set.
type apimBody struct {
	StatusCode       int    `json:"statusCode"`
	Message          string `json:"message"`
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

func apimError(status int, message, code, desc string) []byte {
	b, _ := json.Marshal(apimBody{StatusCode: status, Message: message, Error: code, ErrorDescription: desc})
	return append(b, '\n')
}

func errorReply(status int, reason, message, code, desc string) *reply {
	h := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}
	return &reply{status: status, header: h, body: apimError(status, message, code, desc), reason: reason, err: true}
}

// step is one compiled inbound statement; a non-nil reply ends the request.
type step interface {
	run(st *reqState) *reply
}

// ---- validate-jwt and validate-azure-ad-token

type validateStep struct {
	v             *tokenauth.Validator
	src           apim.TokenSource
	scheme        string
	failedStatus  int
	failedMessage string
	// clientIDs, for validate-azure-ad-token: the allowed appid/azp.
	clientIDs []string
}

func (s *validateStep) token(r *http.Request) (string, error) {
	switch {
	case s.src.TokenValue != "":
		return s.src.TokenValue, nil
	case s.src.QueryParameterName != "":
		return r.URL.Query().Get(s.src.QueryParameterName), nil
	}
	v := r.Header.Get(s.src.HeaderName)
	if v == "" {
		return "", nil
	}
	if s.scheme != "" {
		tok := tokenauth.TokenFromHeader(v, s.scheme)
		if tok == "" {
			return "", &tokenauth.Error{Kind: tokenauth.KindMalformed, Message: fmt.Sprintf("the %s header does not use the %s scheme", s.src.HeaderName, s.scheme)}
		}
		return tok, nil
	}
	if tok := tokenauth.TokenFromHeader(v, "Bearer"); tok != "" {
		return tok, nil
	}
	return strings.TrimSpace(v), nil
}

func (s *validateStep) run(st *reqState) *reply {
	tok, err := s.token(st.out)
	var claims *tokenauth.Claims
	if err == nil {
		claims, err = s.v.Validate(st.out.Context(), tok)
	}
	if err == nil && len(s.clientIDs) > 0 && !contains(s.clientIDs, claims.ClientID) {
		err = &tokenauth.Error{Kind: tokenauth.KindClaim, Message: fmt.Sprintf("client application %q is not allowed", claims.ClientID)}
	}
	if err != nil {
		return s.refuse(err)
	}
	st.claims = claims
	return nil
}

func (s *validateStep) refuse(err error) *reply {
	var e *tokenauth.Error
	if !errors.As(err, &e) {
		e = &tokenauth.Error{Kind: tokenauth.KindMalformed, Message: "the token is not valid", Err: err}
	}
	resp := tokenauth.ResponseFor(e)
	if e.Kind == tokenauth.KindKeysUnavailable {
		r := errorReply(http.StatusServiceUnavailable, "keys_unavailable", resp.Description, resp.Code, resp.Description)
		r.header.Set("Retry-After", "5")
		return r
	}
	msg := s.failedMessage
	if msg == "" {
		msg = "JWT not valid."
		if e.Kind == tokenauth.KindMissing {
			msg = "JWT not present."
		}
	}
	code := resp.Code
	if code == "insufficient_scope" || e.Kind == tokenauth.KindClaim {
		code = "insufficient_scope"
	}
	r := errorReply(s.failedStatus, "jwt_"+e.Kind.String(), msg, code, resp.Description)
	if s.failedStatus == http.StatusUnauthorized {
		challenge := resp.Challenge
		if e.Kind == tokenauth.KindMissing {
			challenge = "Bearer"
		}
		r.header.Set("WWW-Authenticate", challenge)
	}
	return r
}

// ---- set-header

type setHeaderStep struct{ apim.SetHeader }

func applySetHeader(h http.Header, s apim.SetHeader) {
	switch s.ExistsAction {
	case apim.ActionDelete:
		h.Del(s.Name)
	case apim.ActionSkip:
		if len(h.Values(s.Name)) == 0 {
			for _, v := range s.Values {
				h.Add(s.Name, v)
			}
		}
	case apim.ActionAppend:
		for _, v := range s.Values {
			h.Add(s.Name, v)
		}
	default: // override
		h.Del(s.Name)
		for _, v := range s.Values {
			h.Add(s.Name, v)
		}
	}
}

func (s *setHeaderStep) run(st *reqState) *reply {
	if st.sharedHeader {
		return nil // applied to the proxy's copy (route.setHeaders)
	}
	applySetHeader(st.out.Header, s.SetHeader)
	return nil
}

// ---- check-header

type checkHeaderStep struct{ apim.CheckHeader }

func (s *checkHeaderStep) run(st *reqState) *reply {
	got := st.out.Header.Values(s.Name)
	ok := len(got) > 0
	if ok && len(s.Values) > 0 {
		ok = false
		for _, g := range got {
			for _, part := range strings.Split(g, ",") {
				part = strings.TrimSpace(part)
				for _, want := range s.Values {
					if part == want || (s.IgnoreCase && strings.EqualFold(part, want)) {
						ok = true
					}
				}
			}
		}
	}
	if ok {
		return nil
	}
	msg := s.FailedMessage
	if msg == "" {
		msg = "Header " + s.Name + " was not found or has a value that is not allowed."
	}
	return errorReply(s.FailedStatus, "check_header", msg, "", "")
}

// ---- rate-limit-by-key

type rateLimitStep struct {
	apim.RateLimitByKey
	lim *limiter
}

func (s *rateLimitStep) key(st *reqState) string {
	if s.CounterKey == "client-ip" {
		host, _, err := net.SplitHostPort(st.in.RemoteAddr)
		if err != nil {
			return st.in.RemoteAddr
		}
		return host
	}
	if st.claims == nil {
		return ""
	}
	if s.CounterKey == "client-id" {
		return st.claims.ClientID
	}
	v, _ := st.claims.Raw[s.CounterKey].(string)
	return v
}

func (s *rateLimitStep) run(st *reqState) *reply {
	d := s.lim.take(s.key(st), s.IncrementCount)
	st.limit = &limitState{step: s, d: d}
	if d.allowed {
		return nil
	}
	secs := retryAfter(d.reset, st.start)
	r := errorReply(http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", secs), "", "")
	r.header.Set(s.RetryAfterHeaderName, strconv.Itoa(secs))
	return r
}

// retryAfter is the whole seconds from now until reset, at least 1.
func retryAfter(reset, now time.Time) int {
	return max(1, int(math.Ceil(reset.Sub(now).Seconds())))
}

type limitState struct {
	step *rateLimitStep
	d    decision
}

// headers adds the X-RateLimit-* headers (and the policy's own names).
func (l *limitState) headers(h http.Header) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.step.Calls))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(0, l.d.remaining)))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(int64(math.Ceil(float64(l.d.reset.UnixNano())/1e9)), 10))
	if n := l.step.RemainingCallsHeaderName; n != "" {
		h.Set(n, strconv.Itoa(max(0, l.d.remaining)))
	}
	if n := l.step.TotalCallsHeaderName; n != "" {
		h.Set(n, strconv.Itoa(l.step.Calls))
	}
}

// ---- return-response

type returnStep struct{ apim.ReturnResponse }

func (s *returnStep) run(*reqState) *reply {
	r := &reply{status: s.Status, header: http.Header{}}
	for _, h := range s.Headers {
		applySetHeader(r.header, h)
	}
	if s.HasBody {
		r.body = []byte(s.Body)
	}
	return r
}

// ---- compiling

// compileCtx carries what compiling a policy needs from the gateway.
type compileCtx struct {
	g     *Gateway
	file  string
	route string
}

func (c *compileCtx) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", c.file, line, fmt.Sprintf(format, args...))
}

// entraHosts are the public Entra URL prefixes EntraPublicHosts maps.
var entraHosts = []string{"https://login.microsoftonline.com/", "https://sts.windows.net/"}

// discoveryURL applies the Entra host mapping to an openid-config URL.
func (c *compileCtx) discoveryURL(u string) string {
	ts := c.g.cfg.TokenService
	if !ts.EntraPublicHosts {
		return u
	}
	for _, h := range entraHosts {
		if strings.HasPrefix(u, h) {
			return strings.TrimSuffix(ts.URL, "/") + "/" + strings.TrimPrefix(u, h)
		}
	}
	return u
}

func requiredClaims(cs []apim.Claim) []tokenauth.ClaimRequirement {
	var out []tokenauth.ClaimRequirement
	for _, c := range cs {
		out = append(out, tokenauth.ClaimRequirement{Name: c.Name, Match: tokenauth.Match(c.Match), Separator: c.Separator, Values: c.Values})
	}
	return out
}

func (c *compileCtx) validateJWT(p *apim.ValidateJWT) (step, error) {
	var errs []error
	cfg := tokenauth.Config{
		Issuers:                        p.Issuers,
		InsecureSkipIssuerCheck:        len(p.Issuers) == 0,
		Audiences:                      p.Audiences,
		InsecureSkipAudienceCheck:      len(p.Audiences) == 0,
		RequiredClaims:                 requiredClaims(p.RequiredClaims),
		ClockSkew:                      time.Duration(p.ClockSkewSeconds) * time.Second,
		Algorithms:                     []string{"RS256", "RS512", "PS256"},
		InsecureAllowMissingExpiration: !p.RequireExpiration,
		Now:                            c.g.now,
	}
	if len(p.Issuers) == 0 {
		c.g.logger.Warn("validate-jwt has no <issuers>: any issuer whose keys verify the token is accepted (as APIM does)", "policy", c.file, "line", p.Pos())
	}
	if len(p.Audiences) == 0 {
		c.g.logger.Warn("validate-jwt has no <audiences>: tokens for any audience are accepted (as APIM does)", "policy", c.file, "line", p.Pos())
	}
	var static tokenauth.StaticKeySet
	symmetric := false
	for _, k := range p.SigningKeys {
		jwk := jose.JSONWebKey{KeyID: k.ID, Use: "sig"}
		switch {
		case k.Symmetric != "":
			b, err := tokenauth.DecodeSymmetricKey(k.Symmetric)
			if err != nil {
				errs = append(errs, c.errorf(k.Pos(), "<key>: %v", err))
				continue
			}
			jwk.Key, symmetric = b, true
		case k.N != "":
			pub, err := tokenauth.RSAKeyFromComponents(k.N, k.E)
			if err != nil {
				errs = append(errs, c.errorf(k.Pos(), "<key>: %v", err))
				continue
			}
			jwk.Key = pub
		default:
			pub, err := c.g.certificateKey(k.CertificateID)
			if err != nil {
				errs = append(errs, c.errorf(k.Pos(), "<key certificate-id=%q>: %v", k.CertificateID, err))
				continue
			}
			jwk.Key = pub
		}
		static = append(static, jwk)
	}
	if len(static) > 0 {
		cfg.KeySets = append(cfg.KeySets, static)
	}
	if symmetric {
		cfg.Algorithms = append(cfg.Algorithms, "HS256")
	}
	for _, oc := range p.OpenIDConfigs {
		cfg.KeySets = append(cfg.KeySets, c.g.remoteKeySet(c.discoveryURL(oc.URL)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	v, err := tokenauth.New(cfg)
	if err != nil {
		return nil, c.errorf(p.Pos(), "<validate-jwt>: %v", err)
	}
	c.g.validators = append(c.g.validators, v)
	return &validateStep{v: v, src: p.Source, scheme: p.RequireScheme, failedStatus: p.FailedStatus, failedMessage: p.FailedMessage}, nil
}

func (c *compileCtx) validateAAD(p *apim.ValidateAzureADToken) (step, error) {
	ts := strings.TrimSuffix(c.g.cfg.TokenService.URL, "/")
	if ts == "" {
		return nil, c.errorf(p.Pos(), "<validate-azure-ad-token> needs tokenService.url in the gateway config: the token service whose tenant %s issues the tokens", p.TenantID)
	}
	tid := p.TenantID
	issuers := []string{ts + "/" + tid + "/", ts + "/" + tid + "/v2.0"}
	if c.g.cfg.TokenService.EntraPublicHosts {
		issuers = append(issuers, "https://sts.windows.net/"+tid+"/", "https://login.microsoftonline.com/"+tid+"/v2.0")
	}
	auds := append(append([]string{}, p.BackendApplicationIDs...), p.Audiences...)
	if len(auds) == 0 {
		c.g.logger.Warn("validate-azure-ad-token has no <backend-application-ids> or <audiences>: tokens for any audience of the tenant are accepted (as APIM does)", "policy", c.file, "line", p.Pos())
	}
	v, err := tokenauth.New(tokenauth.Config{
		KeySets:                   []tokenauth.KeySet{c.g.remoteKeySet(ts + "/" + tid + "/v2.0/.well-known/openid-configuration")},
		Issuers:                   issuers,
		Audiences:                 auds,
		InsecureSkipAudienceCheck: len(auds) == 0,
		RequiredClaims:            requiredClaims(p.RequiredClaims),
		Algorithms:                []string{"RS256"},
		Now:                       c.g.now,
	})
	if err != nil {
		return nil, c.errorf(p.Pos(), "<validate-azure-ad-token>: %v", err)
	}
	c.g.validators = append(c.g.validators, v)
	return &validateStep{v: v, src: p.Source, failedStatus: p.FailedStatus, failedMessage: p.FailedMessage, clientIDs: p.ClientApplicationIDs}, nil
}

func (c *compileCtx) inbound(steps []apim.Step) ([]step, *rateLimitStep, error) {
	var out []step
	var errs []error
	var lastLimit *rateLimitStep
	validated := false
	for _, s := range steps {
		switch p := s.(type) {
		case *apim.Base:
		case *apim.ValidateJWT:
			st, err := c.validateJWT(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			validated = true
			out = append(out, st)
		case *apim.ValidateAzureADToken:
			st, err := c.validateAAD(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			validated = true
			out = append(out, st)
		case *apim.SetHeader:
			if isIdentityHeader(p.Name) {
				errs = append(errs, c.errorf(p.Pos(), "<set-header name=%q>: x-wif-* headers carry the verified identity and are set by the gateway only", p.Name))
				continue
			}
			out = append(out, &setHeaderStep{*p})
		case *apim.CheckHeader:
			out = append(out, &checkHeaderStep{*p})
		case *apim.RateLimitByKey:
			if p.CounterKey != "client-ip" && !validated {
				errs = append(errs, c.errorf(p.Pos(), "<rate-limit-by-key counter-key=%q> counts by a token claim, so it must follow a <validate-jwt> or <validate-azure-ad-token>", p.CounterKey))
				continue
			}
			rl := &rateLimitStep{RateLimitByKey: *p, lim: newLimiter(p.Calls, time.Duration(p.RenewalPeriodSeconds)*time.Second, c.g.maxRateLimitKeys, c.g.now)}
			c.g.limiters = append(c.g.limiters, rl.lim)
			lastLimit = rl
			out = append(out, rl)
		case *apim.ReturnResponse:
			out = append(out, &returnStep{*p})
		default:
			errs = append(errs, c.errorf(s.Pos(), "statement %T is not supported in <inbound>", s))
		}
	}
	return out, lastLimit, errors.Join(errs...)
}

// certificateKey loads the RSA public key of a configured certificate id.
func (g *Gateway) certificateKey(id string) (any, error) {
	file, ok := g.cfg.Certificates[id]
	if !ok {
		return nil, errors.New("no such certificate: map the id to a PEM file under certificates: in the gateway config")
	}
	data, err := os.ReadFile(g.cfg.Path(file))
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", file, err)
	}
	return cert.PublicKey, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
