package sts

import (
	"encoding/json"
	"fmt"
	"github.com/wif-project/wif/internal/directory"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Diagnosis explains one evaluation of a token request: what each check
// found and the exact difference where one failed. It names configured
// issuers, subjects, audiences and credentials, so it is for admins only:
// it goes into the audit record (wif audit explain) and the answer of the
// credential dry-run, never into a public error.
type Diagnosis struct {
	// Check is the first check that failed ("" when every check passed):
	// request, assertion, time, client, credential, keys, signature,
	// resource or service.
	Check string `json:"check,omitempty"`
	// Reason is one line: what failed and the exact difference.
	Reason string `json:"reason,omitempty"`
	// Assertion is what the presented assertion claims (never the token).
	Assertion *AssertionSummary `json:"assertion,omitempty"`
	// Client is the identity or application client_id named.
	Client *ClientSummary `json:"client,omitempty"`
	// Credentials holds the verdict of each federated credential of the
	// client, nearest first.
	Credentials []CredentialCheck `json:"credentials,omitempty"`
	// OmittedCredentials counts credentials left out to bound the size.
	OmittedCredentials int `json:"omittedCredentials,omitempty"`
	// Time is the outcome of the nbf/exp/iat checks.
	Time *TimeCheck `json:"time,omitempty"`
	// Key is the outcome of the key lookup and signature check.
	Key *KeyCheck `json:"key,omitempty"`
	// Detail is the internal cause of a failure (a fetch error, say).
	Detail string `json:"detail,omitempty"`
}

// AssertionSummary is what an assertion claims.
type AssertionSummary struct {
	Issuer    string   `json:"iss,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	KeyID     string   `json:"kid,omitempty"`
	IssuedAt  string   `json:"iat,omitempty"`
	NotBefore string   `json:"nbf,omitempty"`
	Expiry    string   `json:"exp,omitempty"`
}

// ClientSummary names the client an exchange was for.
type ClientSummary struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	ClientID string `json:"clientId"`
}

// CredentialCheck is one federated credential against the assertion.
// Each result is "match" or the difference found.
type CredentialCheck struct {
	Name           string `json:"name"`
	Issuer         string `json:"issuer"`
	Audience       string `json:"audience"`
	Subject        string `json:"subject,omitempty"`
	Expression     string `json:"claimsMatchingExpression,omitempty"`
	IssuerResult   string `json:"issuerResult"`
	AudienceResult string `json:"audienceResult"`
	SubjectResult  string `json:"subjectResult"`
	Matched        bool   `json:"matched"`
}

// TimeCheck is the outcome of the assertion's time checks.
type TimeCheck struct {
	Now    string `json:"now"`
	Result string `json:"result"`
}

// KeyCheck is the outcome of the key lookup and signature check.
type KeyCheck struct {
	// Issuer is the issuer whose keys were used (or would have been).
	Issuer string `json:"issuer,omitempty"`
	KeyID  string `json:"kid,omitempty"`
	// TrustedIssuer names the tenant's trusted issuer for Issuer and where
	// its keys come from ("name (jwks)"), when there is one.
	TrustedIssuer string `json:"trustedIssuer,omitempty"`
	// Result: "signature verified", "signature does not verify", "kid not
	// among the issuer's keys", "keys unavailable", or "not checked: why".
	Result string `json:"result"`
}

// Results of a comparison.
const resultMatch = "match"

// Bounds of what a refusal stores.
const (
	// maxCallerField bounds each caller-supplied value stored or logged
	// (client id, iss, sub, aud, resource, tenant).
	maxCallerField = 256
	// maxDiagnosisBytes bounds a diagnosis as stored.
	maxDiagnosisBytes = 4 << 10
)

// clip shortens a caller-supplied value to at most maxCallerField bytes
// (on a rune boundary), marking what it cut.
func clip(s string) string {
	if len(s) <= maxCallerField {
		return s
	}
	const mark = "…(truncated)"
	n := maxCallerField - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}

func clipAll(ss []string) []string {
	if len(ss) > 8 {
		ss = append(ss[:8:8], fmt.Sprintf("…(%d more)", len(ss)-8))
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clip(s)
	}
	return out
}

func summarize(a *assertion) *AssertionSummary {
	c := &a.claims
	s := &AssertionSummary{Issuer: clip(c.Issuer), Subject: clip(c.Subject), Audience: clipAll(c.Audience), KeyID: clip(a.kid)}
	for _, f := range []struct {
		t   *time.Time
		dst *string
	}{{c.IssuedAt, &s.IssuedAt}, {c.NotBefore, &s.NotBefore}, {c.Expiry, &s.Expiry}} {
		if f.t != nil {
			*f.dst = f.t.UTC().Format(time.RFC3339)
		}
	}
	return s
}

// encode renders the diagnosis as stored: JSON of at most
// maxDiagnosisBytes, dropping the farthest credentials first.
func (d *Diagnosis) encode() string {
	for {
		b, err := json.Marshal(d)
		if err != nil {
			return ""
		}
		if len(b) <= maxDiagnosisBytes {
			return string(b)
		}
		if len(d.Credentials) == 0 {
			d.Detail = clip(d.Detail)
			d.Reason = clip(d.Reason)
			b, _ = json.Marshal(d)
			return string(b)
		}
		d.Credentials = d.Credentials[:len(d.Credentials)-1]
		d.OmittedCredentials++
	}
}

// credIssuerResult says how a credential's issuer, or the members of the
// issuer set it names, relate to the token's issuer.
func credIssuerResult(f *credential, presented string) string {
	if f.members == nil {
		return compareIssuer(f.Issuer, presented)
	}
	if f.members[presented] {
		return resultMatch
	}
	set, _ := directory.IssuerSetName(f.Issuer)
	if len(f.members) == 0 {
		return fmt.Sprintf("the credential names issuer set %q, which does not exist (or is empty)", set)
	}
	for _, m := range f.issuerList() {
		if r := compareIssuer(m, presented); r != "differs" {
			return fmt.Sprintf("issuer set %q member %q %s", set, m, r)
		}
	}
	return fmt.Sprintf("not among the %d issuers of issuer set %q", len(f.members), set)
}

// compareIssuer says how a credential's issuer relates to the token's.
func compareIssuer(configured, presented string) string {
	switch {
	case configured == presented:
		return resultMatch
	case strings.TrimRight(configured, "/") == strings.TrimRight(presented, "/"):
		if strings.HasSuffix(configured, "/") {
			return "differs only by a trailing '/': the credential has it, the token does not"
		}
		return "differs only by a trailing '/': the token has it, the credential does not"
	case strings.EqualFold(configured, presented):
		return "differs only in letter case"
	case strings.TrimSpace(configured) == strings.TrimSpace(presented):
		return "differs only in surrounding whitespace"
	}
	cu, err1 := url.Parse(configured)
	pu, err2 := url.Parse(presented)
	if err1 == nil && err2 == nil && cu.Host != "" && strings.EqualFold(cu.Host, pu.Host) {
		return fmt.Sprintf("another issuer on the same host (path %q, the credential's is %q): a token of another cluster or tenant?", pu.Path, cu.Path)
	}
	return "differs"
}

// compareAudience says how a credential's audience relates to the token's.
func compareAudience(configured string, presented []string) string {
	if len(presented) == 0 {
		return "the token has no aud claim"
	}
	for _, a := range presented {
		if a == configured {
			return resultMatch
		}
	}
	for _, a := range presented {
		switch {
		case strings.EqualFold(a, configured):
			return fmt.Sprintf("differs only in letter case (the token's aud is %q)", clip(a))
		case strings.TrimRight(a, "/") == strings.TrimRight(configured, "/"):
			return fmt.Sprintf("differs only by a trailing '/' (the token's aud is %q)", clip(a))
		}
	}
	return fmt.Sprintf("differs: request the platform token with audience %q", configured)
}

// compareSubject says how a credential's subject relates to the token's.
func compareSubject(configured, presented string) string {
	switch {
	case configured == presented:
		return resultMatch
	case strings.EqualFold(configured, presented):
		return "differs only in letter case (subjects are case-sensitive)"
	case strings.TrimSpace(configured) == strings.TrimSpace(presented):
		return "differs only in surrounding whitespace"
	}
	tns, tname, tok := k8sSubject(presented)
	cns, cname, cok := k8sSubject(configured)
	switch {
	case tok && cok && tns != cns && tname == cname:
		return fmt.Sprintf("another namespace: the token's is %q, the credential expects %q", tns, cns)
	case tok && cok && tns == cns && tname != cname:
		return fmt.Sprintf("another service account in namespace %q: the token's is %q, the credential expects %q", cns, tname, cname)
	case tok && cok:
		return fmt.Sprintf("another namespace and service account: the token's is %s/%s, the credential expects %s/%s", tns, tname, cns, cname)
	}
	if gh := githubFormat(presented); gh != "" && githubFormat(configured) != "" && gh != githubFormat(configured) {
		return fmt.Sprintf("GitHub subject formats differ: the token's names the repository by %s, the credential's by %s (did the repository's OIDC subject template change?)", gh, githubFormat(configured))
	}
	return "differs"
}

// githubFormat tells GitHub Actions' subject formats apart: the default
// one names the repository ("repo:ORG/REPO:..."); the immutable one names
// it by numeric ids ("repository_owner_id:N:repository_id:N:...").
func githubFormat(sub string) string {
	switch {
	case strings.Contains(sub, "repository_id:") || strings.Contains(sub, "repository_owner_id:"):
		return "numeric ids"
	case strings.HasPrefix(sub, "repo:"):
		return "name"
	}
	return ""
}

// explainCredentials checks every credential of c against the assertion,
// nearest (most parts matching) first.
func explainCredentials(c *client, a *assertion) []CredentialCheck {
	cl := &a.claims
	out := make([]CredentialCheck, 0, len(c.creds))
	for i := range c.creds {
		f := &c.creds[i]
		cc := CredentialCheck{Name: f.Name, Issuer: f.Issuer, Audience: f.Audience(), Subject: f.Subject,
			IssuerResult: credIssuerResult(f, cl.Issuer), AudienceResult: compareAudience(f.Audience(), cl.Audience)}
		if f.expr != nil {
			cc.Expression = f.ClaimsMatchingExpression.Value
			cc.SubjectResult = "the token's claims do not satisfy the expression"
			if f.expr.Match(a.all) {
				cc.SubjectResult = resultMatch
			}
		} else {
			cc.SubjectResult = compareSubject(f.Subject, cl.Subject)
		}
		cc.Matched = cc.IssuerResult == resultMatch && cc.AudienceResult == resultMatch && cc.SubjectResult == resultMatch
		out = append(out, cc)
	}
	score := func(c CredentialCheck) int {
		n := 0
		for _, r := range []string{c.IssuerResult, c.AudienceResult, c.SubjectResult} {
			switch {
			case r == resultMatch:
				n += 2
			case r != "differs":
				n++ // a near miss
			}
		}
		return n
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && score(out[j]) > score(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
