package sts

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wif-project/wif/internal/store"
)

// Exchange is an audited exchange as a replay sees it: who asked, with
// which assertion claims, for which resource.
type Exchange struct {
	TenantID string
	ClientID string
	Issuer   string
	Subject  string
	Audience []string
	// Resource is the resource as requested, or the appId it named.
	Resource string
}

// ExchangeOf is the replayable part of an audit record, and whether the
// record's outcome was the directory's to decide: a success, or a refusal
// for the client, a credential or the resource (a refusal for the time, the
// key or the signature would be the same in any directory).
func ExchangeOf(r store.AuditRecord) (Exchange, bool) {
	x := Exchange{TenantID: r.TenantID, ClientID: r.ClientID, Issuer: r.Issuer, Subject: r.Subject, Audience: r.Audience, Resource: r.Resource}
	if r.TenantID == "" || r.ClientID == "" || r.GrantType == store.AuditAdminChange {
		return x, false
	}
	if r.Result == store.AuditSuccess {
		return x, r.Issuer != ""
	}
	switch r.ErrorCode {
	case CodeClientNotFound:
		return x, true
	case CodeNoMatchingIssuer, CodeNoMatchingAudience, CodeNoMatchingSubject, CodeSubjectCaseOnly, CodeResourceNotFound:
		return x, r.Issuer != ""
	}
	return x, false
}

// Outcome is what a directory decides for an exchange.
type Outcome struct {
	// Result is store.AuditSuccess or store.AuditFailure.
	Result string `json:"result"`
	// Code is the AADSTS code of a refusal.
	Code int `json:"code,omitempty"`
	// Credential is the credential that matched.
	Credential string `json:"credential,omitempty"`
	// Roles are the app roles the access token would carry.
	Roles []string `json:"roles,omitempty"`
	// Reason says why, for admins.
	Reason string `json:"reason,omitempty"`
}

// Replayer decides audited exchanges against two directories — the
// current one and a proposed one — to show what a change would do before
// it is made (wif apply --dry-run --replay).
type Replayer struct {
	before, after *dirIndex
}

// NewReplayer indexes the two directories as the token endpoint would.
func NewReplayer(before, after store.Snapshot) (*Replayer, error) {
	b, err := buildIndex(before)
	if err != nil {
		return nil, fmt.Errorf("replay: index the current directory: %w", err)
	}
	a, err := buildIndex(after)
	if err != nil {
		return nil, fmt.Errorf("replay: index the proposed directory: %w", err)
	}
	return &Replayer{before: b, after: a}, nil
}

// Replay decides x in both directories. uncertain, when not empty, says
// why the outcome cannot be known from the audit record alone: a claims
// expression that reads claims the record does not keep.
func (r *Replayer) Replay(x Exchange) (before, after Outcome, uncertain string) {
	before, ub := decide(r.before, x)
	after, ua := decide(r.after, x)
	return before, after, cmpOr(ub, ua)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decide runs the directory's checks of the token endpoint — tenant,
// client, credential, resource — on what the audit record kept.
func decide(idx *dirIndex, x Exchange) (Outcome, string) {
	fail := func(code int, format string, args ...any) Outcome {
		return Outcome{Result: store.AuditFailure, Code: code, Reason: fmt.Sprintf(format, args...)}
	}
	ti := idx.tenants[lowerASCII(x.TenantID)]
	if ti == nil {
		return fail(CodeTenantNotFound, "tenant %s does not exist", x.TenantID), ""
	}
	c := ti.clients[lowerASCII(x.ClientID)]
	if c == nil {
		return fail(CodeClientNotFound, "client %s does not exist in tenant %s", x.ClientID, x.TenantID), ""
	}
	a := &assertion{
		claims: assertionClaims{Issuer: x.Issuer, Subject: x.Subject, Audience: x.Audience},
		all:    map[string]any{"iss": x.Issuer, "sub": x.Subject},
	}
	if len(x.Audience) == 1 {
		a.all["aud"] = x.Audience[0]
	}
	uncertain := ""
	for i := range c.creds {
		f := &c.creds[i]
		if f.expr == nil || f.Issuer != x.Issuer || !a.claims.hasAudience(f.Audience()) {
			continue
		}
		for _, claim := range f.expr.Claims() {
			if claim != "iss" && claim != "sub" && claim != "aud" {
				uncertain = fmt.Sprintf("credential '%s' of %s '%s' matches on claim '%s', which the audit log does not keep", f.Name, kindName(c), c.name, claim)
			}
		}
	}
	cred, e, reason := matchCredential(c, a)
	if e != nil {
		return Outcome{Result: store.AuditFailure, Code: e.Code, Reason: reason}, uncertain
	}
	res := ti.lookupResource(x.Resource)
	if res == nil {
		return fail(CodeResourceNotFound, "no application of tenant %s has %q as identifier URI or appId", x.TenantID, x.Resource), uncertain
	}
	return Outcome{Result: store.AuditSuccess, Credential: cred.Name, Roles: slices.Clone(res.roles[strings.ToLower(c.principalID)])}, uncertain
}

// Changed reports whether two outcomes differ for the caller: the result,
// or the roles a successful token would carry.
func Changed(before, after Outcome) bool {
	if before.Result != after.Result {
		return true
	}
	return before.Result == store.AuditSuccess && !slices.Equal(before.Roles, after.Roles)
}
