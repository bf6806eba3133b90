// Package apim parses Azure API Management policy documents — the subset
// of elements spec/gateway.md lists — into a checked, typed Policy that
// the gateway compiles and runs. Everything else is refused at load time
// with the file name and line: unknown elements and attributes, policy
// expressions (@(...), @{...}), named values ({{...}}), attribute values
// out of range. Nothing is ignored silently.
package apim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Policy is a parsed <policies> document.
type Policy struct {
	// File is the name errors are reported against.
	File     string
	Inbound  []Step
	Backend  []Step
	Outbound []Step
	OnError  []Step
}

// Step is one policy statement: *Base, *ValidateJWT, *ValidateAzureADToken,
// *SetHeader, *CheckHeader, *RateLimitByKey or *ReturnResponse.
type Step interface {
	// Pos is the line the element starts on.
	Pos() int
}

// Line is the line an element starts on; it implements Step.
type Line int

// Pos returns the line.
func (l Line) Pos() int { return int(l) }

// Base is <base/>: inherit the outer scope's policies. wif has no outer
// scope, so it is a no-op.
type Base struct{ Line }

// TokenSource says where validate-jwt and validate-azure-ad-token find the
// token: exactly one field is set.
type TokenSource struct {
	HeaderName         string
	QueryParameterName string
	TokenValue         string
}

// ValidateJWT is <validate-jwt>.
type ValidateJWT struct {
	Line
	Source TokenSource
	// FailedStatus is failed-validation-httpcode (default 401).
	FailedStatus int
	// FailedMessage is failed-validation-error-message ("" = by failure).
	FailedMessage string
	// RequireExpiration is require-expiration-time (default true).
	RequireExpiration bool
	// RequireScheme is require-scheme, e.g. "Bearer" ("" = none required).
	RequireScheme string
	// ClockSkew is clock-skew in seconds (default 0).
	ClockSkewSeconds int
	// OutputTokenVariableName is accepted for compatibility; wif has no
	// policy variables, so nothing reads it.
	OutputTokenVariableName string
	OpenIDConfigs           []OpenIDConfig
	SigningKeys             []SigningKey
	Audiences               []string
	Issuers                 []string
	RequiredClaims          []Claim
}

// OpenIDConfig is <openid-config url="..."/>.
type OpenIDConfig struct {
	Line
	URL string
}

// SigningKey is one <issuer-signing-keys><key>: exactly one of Symmetric
// (base64 text), N and E (RSA), or CertificateID.
type SigningKey struct {
	Line
	ID            string
	Symmetric     string
	N, E          string
	CertificateID string
}

// Claim is <claim name match separator><value>...</value></claim>.
type Claim struct {
	Line
	Name      string
	Match     string // "all" (default) or "any"
	Separator string
	Values    []string
}

// ValidateAzureADToken is <validate-azure-ad-token>.
type ValidateAzureADToken struct {
	Line
	TenantID                string
	Source                  TokenSource
	FailedStatus            int
	FailedMessage           string
	OutputTokenVariableName string
	ClientApplicationIDs    []string
	BackendApplicationIDs   []string
	Audiences               []string
	RequiredClaims          []Claim
}

// The exists-action values of <set-header>.
const (
	ActionOverride = "override"
	ActionSkip     = "skip"
	ActionAppend   = "append"
	ActionDelete   = "delete"
)

// SetHeader is <set-header name exists-action><value>...</value></set-header>.
type SetHeader struct {
	Line
	Name         string
	ExistsAction string // default override
	Values       []string
}

// CheckHeader is <check-header>.
type CheckHeader struct {
	Line
	Name          string
	FailedStatus  int
	FailedMessage string
	IgnoreCase    bool
	Values        []string
}

// Counter keys that rate-limit-by-key accepts in place of an expression.
var CounterKeys = []string{"client-ip", "client-id", "appid", "azp", "oid", "sub", "tid"}

// RateLimitByKey is <rate-limit-by-key>.
type RateLimitByKey struct {
	Line
	Calls                    int
	RenewalPeriodSeconds     int
	CounterKey               string // one of CounterKeys
	IncrementCount           int    // default 1
	RetryAfterHeaderName     string // default Retry-After
	RemainingCallsHeaderName string // extra header with the remaining count
	TotalCallsHeaderName     string
}

// ReturnResponse is <return-response>: a fixed reply.
type ReturnResponse struct {
	Line
	Status  int // default 200
	Reason  string
	Headers []SetHeader
	Body    string
	HasBody bool
}

// ParseFile reads and parses a policy file.
func ParseFile(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(filepath.Base(path), data)
}

// Parse parses a policy document; file names it in errors. All problems
// found are reported together, each as "file:line: message".
func Parse(file string, data []byte) (*Policy, error) {
	root, err := parseTree(file, data)
	if err != nil {
		return nil, err
	}
	p := &parser{file: file}
	pol := p.policies(root)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return pol, nil
}

type parser struct {
	file string
	errs []error
}

const maxErrors = 50

func (p *parser) errorf(line int, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...)))
	}
}

// check enforces an element's allowed attributes and children and refuses
// expressions, named values and stray text. It returns the values of the
// allowed attributes.
func (p *parser) check(n *node, attrs []string, children []string, textAllowed bool) map[string]string {
	vals := map[string]string{}
	for _, a := range n.attrs {
		name := a.Name.Local
		if a.Name.Space != "" {
			name = a.Name.Space + ":" + name
		}
		if !contains(attrs, name) || a.Name.Space != "" {
			if len(attrs) == 0 {
				p.errorf(n.line, "<%s> takes no attributes, got %s", n.name, name)
			} else {
				p.errorf(n.line, "unknown attribute %s on <%s> (allowed: %s)", name, n.name, strings.Join(attrs, ", "))
			}
			continue
		}
		p.literal(n, "attribute "+name, a.Value)
		vals[name] = a.Value
	}
	for _, c := range n.children {
		if !contains(children, c.name) {
			p.errorf(c.line, "unknown element <%s> in <%s>", c.name, n.name)
		}
	}
	text := strings.TrimSpace(n.text.String())
	if text != "" {
		if !textAllowed {
			p.errorf(n.line, "<%s> holds text %q; it takes only elements", n.name, clip(text))
		} else {
			p.literal(n, "text", text)
		}
	}
	return vals
}

func (p *parser) literal(n *node, what, v string) {
	s := strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(s, "@(") || strings.HasPrefix(s, "@{"):
		p.errorf(n.line, "policy expressions (@(...)) are not supported: <%s> %s is %q; use a literal value", n.name, what, clip(s))
	case strings.Contains(s, "{{") && strings.Contains(s, "}}"):
		p.errorf(n.line, "named values ({{...}}) are not supported: <%s> %s is %q; substitute the value into the file", n.name, what, clip(s))
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var sections = map[string][]string{
	"inbound":  {"base", "validate-jwt", "validate-azure-ad-token", "set-header", "check-header", "rate-limit-by-key", "return-response"},
	"backend":  {"base"},
	"outbound": {"base", "set-header"},
	"on-error": {"base", "set-header", "return-response"},
}

func (p *parser) policies(root *node) *Policy {
	pol := &Policy{File: p.file}
	if root.name != "policies" {
		p.errorf(root.line, "root element is <%s>; a policy document starts with <policies>", root.name)
		return pol
	}
	p.check(root, nil, []string{"inbound", "backend", "outbound", "on-error"}, false)
	seen := map[string]int{}
	for _, sec := range root.children {
		allowed, ok := sections[sec.name]
		if !ok {
			continue // reported by check
		}
		if prev, dup := seen[sec.name]; dup {
			p.errorf(sec.line, "second <%s> section (the first is on line %d)", sec.name, prev)
			continue
		}
		seen[sec.name] = sec.line
		p.check(sec, nil, allowed, false)
		var steps []Step
		for _, c := range sec.children {
			if !contains(allowed, c.name) {
				continue
			}
			if s := p.step(c); s != nil {
				steps = append(steps, s)
			}
		}
		switch sec.name {
		case "inbound":
			pol.Inbound = steps
		case "backend":
			pol.Backend = steps
		case "outbound":
			pol.Outbound = steps
		case "on-error":
			pol.OnError = steps
		}
	}
	return pol
}

func (p *parser) step(n *node) Step {
	switch n.name {
	case "base":
		p.check(n, nil, nil, false)
		return &Base{Line(n.line)}
	case "validate-jwt":
		return p.validateJWT(n)
	case "validate-azure-ad-token":
		return p.validateAAD(n)
	case "set-header":
		s := p.setHeader(n)
		return &s
	case "check-header":
		return p.checkHeader(n)
	case "rate-limit-by-key":
		return p.rateLimit(n)
	case "return-response":
		return p.returnResponse(n)
	}
	return nil
}

func (p *parser) tokenSource(n *node, a map[string]string) TokenSource {
	src := TokenSource{HeaderName: a["header-name"], QueryParameterName: a["query-parameter-name"], TokenValue: a["token-value"]}
	set := 0
	for _, k := range []string{"header-name", "query-parameter-name", "token-value"} {
		if _, ok := a[k]; ok {
			set++
			if strings.TrimSpace(a[k]) == "" {
				p.errorf(n.line, "<%s> %s is empty", n.name, k)
			}
		}
	}
	if set != 1 {
		p.errorf(n.line, "<%s> needs exactly one of header-name, query-parameter-name and token-value, got %d", n.name, set)
	}
	return src
}

func (p *parser) status(n *node, a map[string]string, attr string, def int) int {
	v, ok := a[attr]
	if !ok {
		return def
	}
	code, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || code < 100 || code > 599 {
		p.errorf(n.line, "<%s> %s=%q: want an HTTP status code, an integer from 100 to 599", n.name, attr, v)
		return def
	}
	return code
}

func (p *parser) boolean(n *node, a map[string]string, attr string, def bool) bool {
	v, ok := a[attr]
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	p.errorf(n.line, "<%s> %s=%q: want true or false", n.name, attr, v)
	return def
}

func (p *parser) integer(n *node, a map[string]string, attr string, def, min, max int, required bool) int {
	v, ok := a[attr]
	if !ok {
		if required {
			p.errorf(n.line, "<%s> needs the %s attribute", n.name, attr)
		}
		return def
	}
	i, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || i < min || i > max {
		p.errorf(n.line, "<%s> %s=%q: want an integer from %d to %d", n.name, attr, v, min, max)
		return def
	}
	return i
}

func (p *parser) required(n *node, a map[string]string, attr string) string {
	v, ok := a[attr]
	if !ok || strings.TrimSpace(v) == "" {
		p.errorf(n.line, "<%s> needs a non-empty %s attribute", n.name, attr)
	}
	return strings.TrimSpace(v)
}

// list reads a container of text elements such as <audiences><audience>.
func (p *parser) list(n *node, item string) []string {
	p.check(n, nil, []string{item}, false)
	var out []string
	for _, c := range n.children {
		if c.name != item {
			continue
		}
		p.check(c, nil, nil, true)
		v := strings.TrimSpace(c.text.String())
		if v == "" {
			p.errorf(c.line, "<%s> is empty", item)
			continue
		}
		out = append(out, v)
	}
	return out
}

func (p *parser) once(parent *node, seen map[string]int, c *node) bool {
	if prev, dup := seen[c.name]; dup {
		p.errorf(c.line, "second <%s> in <%s> (the first is on line %d)", c.name, parent.name, prev)
		return false
	}
	seen[c.name] = c.line
	return true
}

var validateJWTAttrs = []string{"header-name", "query-parameter-name", "token-value", "failed-validation-httpcode",
	"failed-validation-error-message", "require-expiration-time", "require-scheme", "require-signed-tokens",
	"clock-skew", "output-token-variable-name"}

func (p *parser) validateJWT(n *node) *ValidateJWT {
	a := p.check(n, validateJWTAttrs, []string{"openid-config", "issuer-signing-keys", "audiences", "issuers", "required-claims"}, false)
	v := &ValidateJWT{
		Line:                    Line(n.line),
		Source:                  p.tokenSource(n, a),
		FailedStatus:            p.status(n, a, "failed-validation-httpcode", 401),
		FailedMessage:           a["failed-validation-error-message"],
		RequireExpiration:       p.boolean(n, a, "require-expiration-time", true),
		RequireScheme:           strings.TrimSpace(a["require-scheme"]),
		ClockSkewSeconds:        p.integer(n, a, "clock-skew", 0, 0, 86400, false),
		OutputTokenVariableName: a["output-token-variable-name"],
	}
	if s, ok := a["require-scheme"]; ok && (v.RequireScheme == "" || strings.ContainsAny(v.RequireScheme, " \t")) {
		p.errorf(n.line, "<validate-jwt> require-scheme=%q: want one word such as Bearer", s)
	}
	if !p.boolean(n, a, "require-signed-tokens", true) {
		p.errorf(n.line, `<validate-jwt> require-signed-tokens="false" is not supported: wif never accepts unsigned tokens`)
	}
	seen := map[string]int{}
	for _, c := range n.children {
		switch c.name {
		case "openid-config":
			ca := p.check(c, []string{"url"}, nil, false)
			u := p.required(c, ca, "url")
			if u != "" && !strings.HasPrefix(u, "https://") {
				p.errorf(c.line, "<openid-config> url=%q: want an https URL", u)
			}
			v.OpenIDConfigs = append(v.OpenIDConfigs, OpenIDConfig{Line: Line(c.line), URL: u})
		case "issuer-signing-keys":
			if p.once(n, seen, c) {
				v.SigningKeys = p.signingKeys(c)
			}
		case "audiences":
			if p.once(n, seen, c) {
				v.Audiences = p.list(c, "audience")
			}
		case "issuers":
			if p.once(n, seen, c) {
				v.Issuers = p.list(c, "issuer")
			}
		case "required-claims":
			if p.once(n, seen, c) {
				v.RequiredClaims = p.claims(c)
			}
		}
	}
	if len(v.OpenIDConfigs) == 0 && len(v.SigningKeys) == 0 {
		p.errorf(n.line, "<validate-jwt> has no keys: give <openid-config url=...> or <issuer-signing-keys>")
	}
	return v
}

func (p *parser) signingKeys(n *node) []SigningKey {
	p.check(n, nil, []string{"key"}, false)
	var keys []SigningKey
	for _, c := range n.children {
		if c.name != "key" {
			continue
		}
		a := p.check(c, []string{"id", "n", "e", "certificate-id"}, nil, true)
		k := SigningKey{Line: Line(c.line), ID: a["id"], N: a["n"], E: a["e"], CertificateID: a["certificate-id"],
			Symmetric: strings.TrimSpace(c.text.String())}
		kinds := 0
		if k.Symmetric != "" {
			kinds++
		}
		if k.N != "" || k.E != "" {
			kinds++
			if k.N == "" || k.E == "" {
				p.errorf(c.line, "<key> needs both n and e for an RSA key")
			}
		}
		if k.CertificateID != "" {
			kinds++
		}
		if kinds != 1 {
			p.errorf(c.line, "<key> needs exactly one of: base64 text (symmetric), n and e (RSA), certificate-id")
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		p.errorf(n.line, "<issuer-signing-keys> is empty")
	}
	return keys
}

func (p *parser) claims(n *node) []Claim {
	p.check(n, nil, []string{"claim"}, false)
	var out []Claim
	for _, c := range n.children {
		if c.name != "claim" {
			continue
		}
		a := p.check(c, []string{"name", "match", "separator"}, []string{"value"}, false)
		cl := Claim{Line: Line(c.line), Name: p.required(c, a, "name"), Match: "all", Separator: a["separator"]}
		if m, ok := a["match"]; ok {
			switch m {
			case "all", "any":
				cl.Match = m
			default:
				p.errorf(c.line, "<claim> match=%q: want all or any", m)
			}
		}
		for _, vc := range c.children {
			if vc.name != "value" {
				continue
			}
			p.check(vc, nil, nil, true)
			cl.Values = append(cl.Values, strings.TrimSpace(vc.text.String()))
		}
		out = append(out, cl)
	}
	return out
}

func (p *parser) validateAAD(n *node) *ValidateAzureADToken {
	a := p.check(n, []string{"tenant-id", "header-name", "query-parameter-name", "token-value", "failed-validation-httpcode",
		"failed-validation-error-message", "output-token-variable-name"},
		[]string{"client-application-ids", "backend-application-ids", "audiences", "required-claims"}, false)
	if _, ok := a["header-name"]; !ok {
		if _, ok := a["query-parameter-name"]; !ok {
			if _, ok := a["token-value"]; !ok {
				a["header-name"] = "Authorization" // APIM's default for this policy
			}
		}
	}
	v := &ValidateAzureADToken{
		Line:                    Line(n.line),
		TenantID:                p.required(n, a, "tenant-id"),
		Source:                  p.tokenSource(n, a),
		FailedStatus:            p.status(n, a, "failed-validation-httpcode", 401),
		FailedMessage:           a["failed-validation-error-message"],
		OutputTokenVariableName: a["output-token-variable-name"],
	}
	seen := map[string]int{}
	for _, c := range n.children {
		if _, known := map[string]bool{"client-application-ids": true, "backend-application-ids": true, "audiences": true, "required-claims": true}[c.name]; !known || !p.once(n, seen, c) {
			continue
		}
		switch c.name {
		case "client-application-ids":
			v.ClientApplicationIDs = p.list(c, "application-id")
		case "backend-application-ids":
			v.BackendApplicationIDs = p.list(c, "application-id")
		case "audiences":
			v.Audiences = p.list(c, "audience")
		case "required-claims":
			v.RequiredClaims = p.claims(c)
		}
	}
	if len(v.ClientApplicationIDs) == 0 {
		p.errorf(n.line, "<validate-azure-ad-token> needs <client-application-ids> with at least one <application-id>")
	}
	return v
}

func (p *parser) setHeader(n *node) SetHeader {
	a := p.check(n, []string{"name", "exists-action"}, []string{"value"}, false)
	s := SetHeader{Line: Line(n.line), Name: p.required(n, a, "name"), ExistsAction: ActionOverride}
	if s.Name != "" && !validHeaderName(s.Name) {
		p.errorf(n.line, "<set-header> name=%q is not a valid HTTP header name", s.Name)
	}
	if act, ok := a["exists-action"]; ok {
		switch act {
		case ActionOverride, ActionSkip, ActionAppend, ActionDelete:
			s.ExistsAction = act
		default:
			p.errorf(n.line, "<set-header> exists-action=%q: want override, skip, append or delete", act)
		}
	}
	for _, c := range n.children {
		if c.name != "value" {
			continue
		}
		p.check(c, nil, nil, true)
		val := strings.TrimSpace(c.text.String())
		if strings.ContainsAny(val, "\r\n\x00") {
			p.errorf(c.line, "<value> of header %s holds a line break or NUL", s.Name)
		}
		s.Values = append(s.Values, val)
	}
	if s.ExistsAction == ActionDelete && len(s.Values) > 0 {
		p.errorf(n.line, `<set-header> exists-action="delete" takes no <value>`)
	}
	if s.ExistsAction != ActionDelete && len(s.Values) == 0 {
		p.errorf(n.line, "<set-header name=%q> has no <value>; use exists-action=\"delete\" to remove a header", s.Name)
	}
	return s
}

func validHeaderName(s string) bool {
	for _, r := range s {
		if r > 126 || r <= 32 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return s != ""
}

func (p *parser) checkHeader(n *node) *CheckHeader {
	a := p.check(n, []string{"name", "failed-check-httpcode", "failed-check-error-message", "ignore-case"}, []string{"value"}, false)
	ch := &CheckHeader{
		Line:          Line(n.line),
		Name:          p.required(n, a, "name"),
		FailedStatus:  p.status(n, a, "failed-check-httpcode", 401),
		FailedMessage: a["failed-check-error-message"],
		IgnoreCase:    p.boolean(n, a, "ignore-case", false),
	}
	for _, k := range []string{"failed-check-httpcode", "failed-check-error-message", "ignore-case"} {
		if _, ok := a[k]; !ok {
			p.errorf(n.line, "<check-header> needs the %s attribute", k)
		}
	}
	for _, c := range n.children {
		if c.name == "value" {
			p.check(c, nil, nil, true)
			ch.Values = append(ch.Values, strings.TrimSpace(c.text.String()))
		}
	}
	return ch
}

func (p *parser) rateLimit(n *node) *RateLimitByKey {
	a := p.check(n, []string{"calls", "renewal-period", "counter-key", "increment-count", "retry-after-header-name",
		"retry-after-variable-name", "remaining-calls-header-name", "remaining-calls-variable-name", "total-calls-header-name"}, nil, false)
	rl := &RateLimitByKey{
		Line:                     Line(n.line),
		Calls:                    p.integer(n, a, "calls", 0, 1, 1<<30, true),
		RenewalPeriodSeconds:     p.integer(n, a, "renewal-period", 0, 1, 300*24*3600, true),
		CounterKey:               p.required(n, a, "counter-key"),
		IncrementCount:           p.integer(n, a, "increment-count", 1, 1, 1<<20, false),
		RetryAfterHeaderName:     "Retry-After",
		RemainingCallsHeaderName: a["remaining-calls-header-name"],
		TotalCallsHeaderName:     a["total-calls-header-name"],
	}
	if v, ok := a["retry-after-header-name"]; ok {
		rl.RetryAfterHeaderName = v
	}
	for _, h := range []string{rl.RetryAfterHeaderName, rl.RemainingCallsHeaderName, rl.TotalCallsHeaderName} {
		if h != "" && !validHeaderName(h) {
			p.errorf(n.line, "<rate-limit-by-key> header name %q is not a valid HTTP header name", h)
		}
	}
	if rl.CounterKey != "" && !strings.HasPrefix(rl.CounterKey, "@") && !contains(CounterKeys, rl.CounterKey) {
		p.errorf(n.line, "<rate-limit-by-key> counter-key=%q: want one of %s (C# expressions are not supported)", rl.CounterKey, strings.Join(CounterKeys, ", "))
	}
	return rl
}

func (p *parser) returnResponse(n *node) *ReturnResponse {
	p.check(n, nil, []string{"set-status", "set-header", "set-body"}, false)
	rr := &ReturnResponse{Line: Line(n.line), Status: 200}
	seen := map[string]int{}
	for _, c := range n.children {
		switch c.name {
		case "set-status":
			if !p.once(n, seen, c) {
				continue
			}
			a := p.check(c, []string{"code", "reason"}, nil, false)
			if _, ok := a["code"]; !ok {
				p.errorf(c.line, "<set-status> needs the code attribute")
			}
			rr.Status = p.status(c, a, "code", 200)
			rr.Reason = a["reason"]
		case "set-header":
			rr.Headers = append(rr.Headers, p.setHeader(c))
		case "set-body":
			if !p.once(n, seen, c) {
				continue
			}
			p.check(c, nil, nil, true)
			rr.Body, rr.HasBody = strings.TrimSpace(c.text.String()), true
		}
	}
	return rr
}
