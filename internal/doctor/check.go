package doctor

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/stsclient"
)

// Sections of wif token decode --check (with SectionIssuer between).
const (
	SectionToken    = "token"
	SectionResource = "resource"
)

// TokenCheck says what a resource expects of a token.
type TokenCheck struct {
	// Audience, when set, is the audience the resource requires (its
	// identifier URI or appId).
	Audience string
	// TenantID, ClientIDs and Roles, when set, are the tenant (tid), the
	// calling clients (azp or appid) and the app roles the resource
	// requires, as APIM's validate-azure-ad-token does.
	TenantID  string
	ClientIDs []string
	Roles     []string
	// RootCAs is the trust for the issuer's discovery and keys (nil: the
	// system roots).
	RootCAs *x509.CertPool
	Timeout time.Duration
	Now     func() time.Time
}

// CheckToken validates a token as a resource would — signature against
// its issuer's published keys, times, and what opts requires — and says
// what a resource would refuse and why.
func CheckToken(ctx context.Context, raw string, o TokenCheck) *Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	r := &Report{Checks: []Check{}}
	const s = SectionToken
	t, err := parseJWT(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(raw), "Bearer ")))
	if err != nil {
		r.add(s, "a JWT", Fail, err.Error(), "pass the token itself (the part after 'Bearer ')")
		r.OK = false
		return r
	}
	now := o.Now()
	switch {
	case t.exp.IsZero():
		r.add(s, "lifetime", Fail, "no exp claim: validators refuse a token that never expires", "")
	case now.After(t.exp.Add(clockSkew)):
		r.add(s, "lifetime", Fail, fmt.Sprintf("expired %s ago (exp %s): a resource answers 401", human(now.Sub(t.exp)), t.exp.UTC().Format(time.RFC3339)),
			"get a new token (the SDKs refresh before expiry; a cached or copied token is not)")
	case !t.nbf.IsZero() && t.nbf.After(now.Add(clockSkew)):
		r.add(s, "lifetime", Fail, fmt.Sprintf("not valid for another %s (nbf %s)", human(t.nbf.Sub(now)), t.nbf.UTC().Format(time.RFC3339)), "synchronise the clocks (NTP)")
	default:
		r.add(s, "lifetime", Pass, fmt.Sprintf("expires in %s (exp %s)", human(t.exp.Sub(now)), t.exp.UTC().Format(time.RFC3339)), "")
	}
	c := stsclient.NewHTTPClient(o.RootCAs)
	c.Timeout = o.Timeout
	checkIssuer(ctx, r, Config{Now: o.Now, Timeout: o.Timeout}, c, t, true)

	str := func(k string) string { v, _ := t.claims[k].(string); return v }
	if o.Audience != "" {
		if slices.Contains(t.aud, o.Audience) {
			r.add(SectionResource, "audience", Pass, strings.Join(t.aud, ", "), "")
		} else {
			r.add(SectionResource, "audience", Fail, fmt.Sprintf("aud is %s, not %q: a resource expecting %q refuses it (401)", strings.Join(t.aud, ", "), o.Audience, o.Audience),
				fmt.Sprintf("request the token with scope %s/.default (an application's identifier URI or appId)", strings.TrimSuffix(o.Audience, "/")))
		}
	} else {
		r.add(SectionResource, "audience", Skip, "aud "+strings.Join(t.aud, ", ")+"; pass --audience to check it as a resource would", "")
	}
	if o.TenantID != "" {
		if tid := str("tid"); strings.EqualFold(tid, o.TenantID) {
			r.add(SectionResource, "tenant", Pass, tid, "")
		} else {
			r.add(SectionResource, "tenant", Fail, fmt.Sprintf("tid is %q, not %q: a resource of that tenant refuses it", tid, o.TenantID), "get the token from the resource's tenant")
		}
	}
	if len(o.ClientIDs) > 0 {
		client := str("azp")
		if client == "" {
			client = str("appid")
		}
		if slices.ContainsFunc(o.ClientIDs, func(id string) bool { return strings.EqualFold(id, client) }) {
			r.add(SectionResource, "client", Pass, client, "")
		} else {
			r.add(SectionResource, "client", Fail, fmt.Sprintf("the caller (azp/appid) is %q, not one of %s: the resource's client-application-ids refuse it (401)", client, strings.Join(o.ClientIDs, ", ")),
				"call with an allowed identity, or add its client id to the resource's allowed clients")
		}
	}
	if len(o.Roles) > 0 {
		var have []string
		if rs, ok := t.claims["roles"].([]any); ok {
			for _, x := range rs {
				have = append(have, fmt.Sprint(x))
			}
		}
		var missing []string
		for _, want := range o.Roles {
			if !slices.Contains(have, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			r.add(SectionResource, "roles", Pass, strings.Join(have, ", "), "")
		} else {
			r.add(SectionResource, "roles", Fail, fmt.Sprintf("roles [%s] lack %s: a resource requiring them answers 403", strings.Join(have, ", "), strings.Join(missing, ", ")),
				"assign the app role to the caller (wif role assign --assignee CLIENT --resource API --role ROLE), then get a new token")
		}
	}
	r.OK = r.Failed() == 0
	return r
}
