package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/stsclient"
)

func checkTokenService(ctx context.Context, r *Report, cfg Config, c *http.Client, w *workload) {
	const s = SectionTokenService
	if w.authority == "" {
		r.add(s, "reachable", Skip, "AZURE_AUTHORITY_HOST is not usable", "")
		return
	}
	tenant := w.tenantID
	if tenant == "" {
		tenant = "organizations"
	}
	url := w.authority + tenant + "/v2.0/.well-known/openid-configuration"
	sent := cfg.Now()
	resp, body, err := get(ctx, c, url, maxMetadataBytes)
	if err != nil {
		r.add(s, "reachable", Fail, fmt.Sprintf("%s: %v", url, err), netFix(err, w.trustFix()))
		return
	}
	r.add(s, "reachable", Pass, fmt.Sprintf("%s over TLS, trusted by %s", strings.TrimSuffix(w.authority, "/"), w.caSource), "")
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		// The Date header has whole seconds: compare with the request's
		// midpoint and allow for the truncation.
		mid := sent.Add(cfg.Now().Sub(sent) / 2)
		skew := mid.Sub(date)
		switch {
		case skew > clockSkew || skew < -clockSkew-time.Second:
			r.add(s, "clock", Fail, fmt.Sprintf("this machine's clock is %s %s the token service's: tokens will look expired or not yet valid (AADSTS700024)", human(skew), aheadBehind(skew)),
				"synchronise the clocks (NTP) on both")
		case skew > 30*time.Second || skew < -31*time.Second:
			r.add(s, "clock", Warn, fmt.Sprintf("this machine's clock is %s %s the token service's (leeway is %s)", human(skew), aheadBehind(skew), human(clockSkew)), "synchronise the clocks (NTP)")
		default:
			r.add(s, "clock", Pass, "within a second or so of the token service's", "")
		}
	}
	if w.tenantID == "" {
		return
	}
	var e struct {
		Issuer     string `json:"issuer"`
		Error      string `json:"error"`
		ErrorCodes []int  `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &e)
	switch {
	case resp.StatusCode == http.StatusOK && e.Issuer != "":
		r.add(s, "tenant", Pass, w.tenantID+" exists", "")
	case e.Error != "":
		r.add(s, "tenant", Fail, fmt.Sprintf("the token service does not know tenant %s (%s%s)", w.tenantID, e.Error, codes(e.ErrorCodes)),
			"check AZURE_TENANT_ID against the token service's tenants (wif dev prints its tenant id)")
	case resp.StatusCode == http.StatusNotFound:
		r.add(s, "tenant", Fail, url+" answered 404: AZURE_AUTHORITY_HOST does not point at a token service",
			"set AZURE_AUTHORITY_HOST to the token service's base URL (not the gateway's, not the issuer's)")
	default:
		r.add(s, "tenant", Fail, fmt.Sprintf("%s answered %d without a discovery document", url, resp.StatusCode), "check that AZURE_AUTHORITY_HOST is the token service's base URL")
	}
}

func aheadBehind(d time.Duration) string {
	if d > 0 {
		return "ahead of"
	}
	return "behind"
}

func codes(cs []int) string {
	if len(cs) == 0 {
		return ""
	}
	return fmt.Sprintf(", AADSTS%d", cs[0])
}

// checkExchange makes the exchange the SDK would make and, on refusal,
// shows the token service's public answer and the correlation id.
func checkExchange(ctx context.Context, r *Report, cfg Config, c *http.Client, w *workload, t *token) {
	const s = SectionExchange
	if cfg.Scope == "" {
		r.add(s, "exchange", Skip, "no --scope given", "run wif doctor --scope <resource>/.default to try a real exchange")
		return
	}
	if w.clientID == "" || w.tenantID == "" || w.authority == "" || t == nil {
		r.add(s, "exchange", Skip, "the environment or the token file is not usable (see above)", "")
		return
	}
	sc, err := stsclient.New(stsclient.Config{AuthorityHost: w.authority, TenantID: w.tenantID,
		Assertion: func(context.Context) (string, error) { return t.raw, nil }, HTTPClient: c, Timeout: cfg.Timeout, UserAgent: "wif-doctor"})
	if err != nil {
		r.add(s, "exchange", Fail, err.Error(), "")
		return
	}
	tok, err := sc.Exchange(ctx, w.clientID, cfg.Scope)
	var re *stsclient.ResponseError
	switch {
	case err == nil:
		detail := "an access token for " + cfg.Scope
		if at, perr := parseJWT(tok.AccessToken); perr == nil {
			detail = fmt.Sprintf("access token for aud %s", strings.Join(at.aud, ","))
			if roles, ok := at.claims["roles"].([]any); ok && len(roles) > 0 {
				var rs []string
				for _, x := range roles {
					rs = append(rs, fmt.Sprint(x))
				}
				detail += ", roles " + strings.Join(rs, ",")
			}
			detail += fmt.Sprintf(", expires in %s", human(time.Until(tok.ExpiresOn)))
		}
		r.add(s, "exchange", Pass, detail, "")
	case errors.As(err, &re):
		r.CorrelationID = re.CorrelationID
		desc := re.Description
		if i := strings.Index(desc, " Trace ID:"); i >= 0 {
			desc = desc[:i]
		}
		detail := fmt.Sprintf("refused (%d %s): %s", re.StatusCode, re.ErrorCode, desc)
		fix := exchangeFix(re)
		if re.CorrelationID != "" {
			fix += "; an admin sees the exact difference with: wif audit explain " + re.CorrelationID
		}
		r.add(s, "exchange", Fail, detail, fix)
	default:
		r.add(s, "exchange", Fail, err.Error(), netFix(err, w.trustFix()))
	}
}

// exchangeFix is what to do about a refusal, by its code: what the caller
// can change on its side.
func exchangeFix(e *stsclient.ResponseError) string {
	code := 0
	if len(e.ErrorCodes) > 0 {
		code = e.ErrorCodes[0]
	}
	switch code {
	case 700016:
		return "no identity or application has this AZURE_CLIENT_ID in this tenant: check the service account's azure.workload.identity/client-id annotation"
	case 90002:
		return "check AZURE_TENANT_ID"
	case 700211:
		return "no credential of this identity trusts the token's issuer (compare iss above with the credential's issuer, trailing '/' included)"
	case 700212:
		return "no credential of this identity accepts the token's audience (above)"
	case 700213, 7002138:
		return "no credential of this identity names the token's subject (above, letter case included): in Kubernetes it is system:serviceaccount:<namespace>:<service account>"
	case 500011:
		return "the scope names no application in this tenant: check --scope (an application's identifier URI or appId, then /.default)"
	case 700024, 70023:
		return "the token's times are outside what the token service accepts: see the lifetime and clock checks"
	case 7000272, 90061, 50166:
		return "the token service cannot get the issuer's keys or the token's kid: see the issuer checks"
	}
	return "see the description"
}
