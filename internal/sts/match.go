package sts

import (
	"fmt"
	"strings"

	"github.com/wif-project/wif/internal/directory"
)

// matchCredential finds the federated credential of c that trusts the
// assertion: issuer, audience and subject compared exactly and case-
// sensitively (or the credential's claims expression). When none does, the
// error says which part failed, as Entra's codes do, in words that name
// only what the caller sent; reason names the nearest credential of this
// same client and the exact difference, for admins (and for the caller
// once its signature is verified).
func matchCredential(c *client, a *assertion) (cred *credential, e *Error, reason string) {
	cl := &a.claims
	var byIssuer []*credential
	for i := range c.creds {
		if c.creds[i].trusts(cl.Issuer) {
			byIssuer = append(byIssuer, &c.creds[i])
		}
	}
	if len(byIssuer) == 0 {
		return nil, errNoMatchingIssuer(cl.Issuer), issuerHint(c, cl.Issuer)
	}
	var byAudience []*credential
	for _, f := range byIssuer {
		if cl.hasAudience(f.Audience()) {
			byAudience = append(byAudience, f)
		}
	}
	if len(byAudience) == 0 {
		return nil, newError(errInvalidClient, CodeNoMatchingAudience, "No matching federated identity record found for presented assertion audience '%s'. %s", clip(strings.Join(cl.Audience, ",")), ficDocs),
			audienceHint(byIssuer, cl.Audience)
	}
	for _, f := range byAudience {
		if f.expr != nil {
			if f.expr.Match(a.all) {
				return f, nil, ""
			}
			continue
		}
		if f.Subject == cl.Subject {
			return f, nil, ""
		}
	}
	for _, f := range byAudience {
		if f.expr == nil && strings.EqualFold(f.Subject, cl.Subject) {
			return nil, newError(errInvalidClient, CodeSubjectCaseOnly, "No matching federated identity record found for presented assertion subject '%s'. The subject matches a federated identity credential only when letter case is ignored; subjects are case-sensitive. %s", clip(cl.Subject), ficDocs),
				fmt.Sprintf("subject differs only in letter case: credential '%s' expects '%s', the token has '%s'", f.Name, f.Subject, clip(cl.Subject))
		}
	}
	return nil, errNoMatchingSubject(cl.Subject), subjectHint(byAudience, cl.Subject)
}

func errNoMatchingIssuer(iss string) *Error {
	return newError(errInvalidClient, CodeNoMatchingIssuer, "No matching federated identity record found for presented assertion issuer '%s'. %s", clip(iss), ficDocs)
}

func errNoMatchingSubject(sub string) *Error {
	return newError(errInvalidClient, CodeNoMatchingSubject, "No matching federated identity record found for presented assertion subject '%s'. %s", clip(sub), ficDocs)
}

func issuerHint(c *client, iss string) string {
	if len(c.creds) == 0 {
		return fmt.Sprintf("the %s '%s' has no federated identity credentials: create one trusting issuer '%s'", kindName(c), c.name, clip(iss))
	}
	norm := func(s string) string { return strings.TrimRight(s, "/") }
	var best *credential
	bestDist := -1
	bestIssuer := ""
	for i := range c.creds {
		f := &c.creds[i]
		for _, fi := range f.issuerList() {
			switch {
			case norm(fi) == norm(iss):
				return fmt.Sprintf("issuer differs only by a trailing '/': credential '%s' expects '%s', the token has '%s'", f.Name, fi, clip(iss))
			case strings.EqualFold(fi, iss):
				return fmt.Sprintf("issuer differs only in letter case: credential '%s' expects '%s', the token has '%s'", f.Name, fi, clip(iss))
			}
			if d := levenshtein(fi, iss); bestDist < 0 || d < bestDist {
				best, bestDist, bestIssuer = f, d, fi
			}
		}
	}
	if best == nil {
		return fmt.Sprintf("no credential of %s '%s' trusts issuer '%s'; its credentials name issuer sets that have no members", kindName(c), c.name, clip(iss))
	}
	if best.members != nil {
		set, _ := directory.IssuerSetName(best.Issuer)
		return fmt.Sprintf("no credential of %s '%s' trusts issuer '%s'; the nearest, '%s', trusts issuer set '%s', whose nearest member is '%s'", kindName(c), c.name, clip(iss), best.Name, set, bestIssuer)
	}
	return fmt.Sprintf("no credential of %s '%s' trusts issuer '%s'; the nearest, '%s', trusts '%s'", kindName(c), c.name, clip(iss), best.Name, best.Issuer)
}

func audienceHint(creds []*credential, auds []string) string {
	f := creds[0]
	for _, a := range auds {
		for _, g := range creds {
			if strings.EqualFold(g.Audience(), a) {
				return fmt.Sprintf("audience differs only in letter case: credential '%s' expects '%s', the token has '%s'", g.Name, g.Audience(), clip(a))
			}
		}
	}
	if len(auds) == 0 {
		return fmt.Sprintf("the token has no aud claim; credential '%s' expects audience '%s'", f.Name, f.Audience())
	}
	return fmt.Sprintf("another audience: credential '%s' expects '%s', the token's aud is '%s' (request the platform token with audience '%s')", f.Name, f.Audience(), clip(strings.Join(auds, "','")), f.Audience())
}

// k8sSubject splits system:serviceaccount:<namespace>:<name>.
func k8sSubject(s string) (ns, name string, ok bool) {
	rest, found := strings.CutPrefix(s, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	return ns, name, ok && ns != "" && name != ""
}

func subjectHint(creds []*credential, sub string) string {
	var best *credential
	bestDist := -1
	for _, f := range creds {
		if f.expr != nil {
			continue
		}
		if d := levenshtein(f.Subject, sub); bestDist < 0 || d < bestDist {
			best, bestDist = f, d
		}
	}
	if best == nil {
		f := creds[0]
		return fmt.Sprintf("the token's claims do not satisfy credential '%s': %s", f.Name, f.ClaimsMatchingExpression.Value)
	}
	tns, tname, tok := k8sSubject(sub)
	cns, cname, cok := k8sSubject(best.Subject)
	switch {
	case tok && cok && tns != cns && tname == cname:
		return fmt.Sprintf("another namespace: the subject's namespace is '%s', credential '%s' expects '%s'", tns, best.Name, cns)
	case tok && cok && tns == cns && tname != cname:
		return fmt.Sprintf("another service account: the subject's service account is '%s', credential '%s' expects '%s' (namespace '%s')", tname, best.Name, cname, cns)
	case strings.TrimSpace(best.Subject) == strings.TrimSpace(sub):
		return fmt.Sprintf("subject differs only in surrounding whitespace from credential '%s'", best.Name)
	}
	return fmt.Sprintf("the subject is '%s'; the nearest credential, '%s', expects '%s'", clip(sub), best.Name, best.Subject)
}

func kindName(c *client) string {
	if c.kind == "application" {
		return "application"
	}
	return "managed identity"
}

// levenshtein is the edit distance of a and b, bounded in cost by the
// 600-character limit on the fields it compares.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 1000 || len(rb) > 1000 {
		// An assertion may carry a 16 KiB claim; do not spend quadratic
		// time on it in an error path.
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
