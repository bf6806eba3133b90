package sts

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"slices"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// maxAssertionLifetime is Entra's bound on exp - iat.
const maxAssertionLifetime = 25 * time.Hour

// nextStep is the public hint of a refusal whose details a caller is not
// entitled to: it says where to look, naming nothing configured.
const nextStep = "run 'wif doctor' where the workload runs, or ask an admin to run 'wif audit explain' with the correlation id below"

// evaluation is the outcome of the checks of one exchange.
type evaluation struct {
	a      *assertion
	client *client
	cred   *credential
	// verified: the assertion's signature verified with a key of an issuer
	// that some credential of the client trusts — the caller is that
	// workload, and may be told the exact difference.
	verified bool
	diag     Diagnosis
	// all: go on past a failed time check, so every check is reported
	// (the credential dry-run); timeErr holds that first failure.
	all     bool
	timeErr *Error
}

// exchange runs the checks of spec/sts.md §4, in order, for one token
// request, and mints the access token. rec is filled for the audit log as
// the checks learn more; every caller-supplied value in it is clipped.
func (s *Service) exchange(ctx context.Context, ti *tenantIndex, req *tokenRequest, rec *store.AuditRecord) (*issued, *Error) {
	tid := ti.tenant.ID
	// The resource as requested; on success, the appId it names.
	rec.Resource = clip(req.resource)
	ev := &evaluation{}
	ectx, span := ctx, trace.Span(nil)
	if s.cfg.Tracer != nil {
		ectx, span = s.cfg.Tracer.Start(ctx, "sts.evaluate_assertion")
	}
	e := s.evaluate(ectx, ti, req.clientID, req.assertion, ev)
	if span != nil {
		if e != nil {
			span.SetStatus(codes.Error, fmt.Sprintf("AADSTS%d", e.Code))
		}
		span.End()
	}
	if ev.a != nil {
		cl := &ev.a.claims
		rec.Issuer, rec.Subject = clip(cl.Issuer), clip(cl.Subject)
		rec.Audience = clipAudience(cl.Audience)
		if cl.JTI != "" {
			sum := sha256.Sum256([]byte(cl.JTI))
			rec.JTIHash = hex.EncodeToString(sum[:])
		}
	}
	if ev.client != nil {
		rec.ClientID = ev.client.clientID
	}
	if ev.cred != nil {
		rec.CredentialName = ev.cred.Name
	}
	if e == nil {
		requested := s.aliased(req.resource)
		r := ti.lookupResource(requested)
		if r == nil {
			e = errResourceNotFound(clip(req.resource), tid)
			if req.grantType == GrantTokenExchange {
				e.Err = errInvalidTarget
			}
			ev.diag.Check, ev.diag.Reason = "resource", fmt.Sprintf("no application of tenant %s has %q as identifier URI or appId", tid, clip(req.resource))
		} else {
			rec.Resource = r.app.AppID
			now := s.cfg.Now()
			var sspan trace.Span
			if s.cfg.Tracer != nil {
				_, sspan = s.cfg.Tracer.Start(ctx, "sts.sign_access_token")
			}
			tok, err := s.mint(tid, ev.client, r, requested, now)
			if sspan != nil {
				sspan.End()
			}
			if err == nil {
				s.usage.used(ev.cred.ID, now)
				return tok, nil
			}
			e = errService(err)
			ev.diag.Check, ev.diag.Reason, ev.diag.Detail = "service", "signing the access token failed", err.Error()
		}
	}
	if req.grantType == GrantTokenExchange && e.Err == errInvalidClient {
		e.Err, e.Status = errInvalidRequest, 400 // RFC 8693 §2.2.2: an unacceptable subject_token is invalid_request
	}
	if ev.diag.Reason == "" {
		ev.diag.Reason = e.Description
		if e.Hint != "" {
			ev.diag.Reason += " (" + e.Hint + ")"
		}
	}
	if e.cause != nil && ev.diag.Detail == "" {
		ev.diag.Detail = e.cause.Error()
	}
	rec.Reason = clip(ev.diag.Reason)
	rec.Diagnosis = ev.diag.encode()
	return nil, e
}

// evaluate runs every check of an assertion presented for clientID in a
// tenant, stopping at the first failure but for one: when no credential
// matches, it still checks the signature against the keys of the issuer
// the nearest credential trusts, to learn whether the caller may be told
// the difference. It fills ev and returns the public refusal, or nil.
func (s *Service) evaluate(ctx context.Context, ti *tenantIndex, clientID, raw string, ev *evaluation) (out *Error) {
	d := &ev.diag
	defer func() {
		// In Entra's order a time failure comes first: in the dry-run,
		// which went on past it, it is still the answer.
		if ev.timeErr != nil {
			d.Check, d.Reason, out = "time", ev.timeErr.Hint, ev.timeErr
			if d.Reason == "" {
				d.Reason = ev.timeErr.Description
			}
		}
	}()
	timeFail := func(e *Error) *Error {
		if ev.all {
			ev.timeErr = e
			return nil
		}
		d.Check = "time"
		return e
	}
	fail := func(check string, e *Error) *Error {
		d.Check = check
		return e
	}
	a, e := parseAssertion(raw)
	if e != nil {
		return fail("assertion", e)
	}
	ev.a = a
	d.Assertion = summarize(a)
	cl := &a.claims
	for _, missing := range []struct{ name, value string }{{"iss", cl.Issuer}, {"sub", cl.Subject}} {
		if missing.value == "" {
			return fail("assertion", errMalformedJWT(fmt.Sprintf("The assertion has no %s claim.", missing.name)))
		}
	}
	pol := ti.issuers[cl.Issuer]
	if algs := s.algorithmsFor(pol, cl.Issuer); !slices.Contains(algs, a.alg) {
		d.Reason = fmt.Sprintf("issuer %q may sign with %s; the assertion is signed with %s", clip(cl.Issuer), strings.Join(algs, ", "), a.alg)
		if pol != nil {
			d.Reason += fmt.Sprintf(" (trusted issuer %q of the tenant)", pol.name)
		}
		return fail("assertion", errMalformedJWT(fmt.Sprintf("The assertion's alg is %q; it is not accepted from this issuer.", a.alg)).
			withHint("the token service accepts RS256 assertions (as Entra ID does) unless the issuer's trusted-issuer object allows more: wif issuer-trust create --issuer ISSUER --algorithms RS256,%s (a tenant admin), or wif serve --issuer-algorithms ISSUER=%s (the operator)", a.alg, a.alg))
	}
	if len(cl.Audience) == 0 {
		return fail("assertion", errMalformedJWT("The assertion has no aud claim."))
	}
	if cl.IssuedAt == nil {
		return fail("time", newError(errInvalidRequest, CodeAssertionLifetime, "The client assertion has no 'iat' claim."))
	}
	if cl.Expiry == nil {
		return fail("assertion", errMalformedJWT("The assertion has no exp claim."))
	}
	now := s.cfg.Now()
	d.Time = &TimeCheck{Now: now.UTC().Format(time.RFC3339), Result: "valid"}
	if life := cl.Expiry.Sub(*cl.IssuedAt); life > maxAssertionLifetime {
		d.Time.Result = fmt.Sprintf("lifetime %s is over 25 h", life.Round(time.Second))
		if e := timeFail(newError(errInvalidRequest, CodeAssertionLifetime, "The client assertion's lifetime (exp - iat) is %s; it must not exceed 25 hours.", life.Round(time.Second)).
			withHint("request shorter-lived platform tokens (a Kubernetes projected token's expirationSeconds, for example)")); e != nil {
			return e
		}
	}
	if pol != nil && pol.maxLifetime > 0 {
		if life := cl.Expiry.Sub(*cl.IssuedAt); life > pol.maxLifetime {
			d.Time.Result = fmt.Sprintf("lifetime %s is over the %s that trusted issuer %q allows", life.Round(time.Second), pol.maxLifetime, pol.name)
			if e := timeFail(newError(errInvalidRequest, CodeAssertionLifetime, "The client assertion's lifetime (exp - iat) is %s; this issuer's tokens may live at most %s.", life.Round(time.Second), pol.maxLifetime).
				withHint("request shorter-lived platform tokens (a Kubernetes projected token's expirationSeconds, for example)")); e != nil {
				return e
			}
		}
	}
	skew := s.cfg.ClockSkew
	notBefore := *cl.IssuedAt
	if cl.NotBefore != nil {
		notBefore = *cl.NotBefore
	}
	if now.Add(skew).Before(notBefore) || !now.Add(-skew).Before(*cl.Expiry) {
		e := newError(errInvalidClient, CodeAssertionTimeRange, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
			entraTime(now), entraTime(notBefore), entraTime(*cl.Expiry))
		if now.After(*cl.Expiry) {
			e.Hint = fmt.Sprintf("the assertion expired %s ago: is the token file being refreshed?", now.Sub(*cl.Expiry).Round(time.Second))
		} else {
			e.Hint = fmt.Sprintf("the assertion is valid only from %s: check the clocks of the issuer and this service", entraTime(notBefore))
		}
		d.Time.Result = e.Hint
		if e := timeFail(e); e != nil {
			return e
		}
	}
	if s.isOwnToken(cl.Issuer, a.kid) {
		return fail("assertion", newError(errInvalidClient, CodeEntraIssuedAssertion, "AAD-issued tokens may not be used for federated identity flows.").
			withHint("send the platform's token (for example the Kubernetes service-account token file), not an access token from this service"))
	}

	c := ti.clients[lowerASCII(clientID)]
	if c == nil {
		d.Reason = fmt.Sprintf("client id %q (as sent) names no managed identity or application in tenant %s", clip(clientID), ti.tenant.ID)
		return fail("client", errClientNotFound(clip(clientID), ti.tenant.ID).withHint("the client id is looked up in tenant %s only: check AZURE_CLIENT_ID and AZURE_TENANT_ID", ti.tenant.ID))
	}
	ev.client = c
	d.Client = &ClientSummary{Kind: kindName(c), Name: c.name, ClientID: c.clientID}

	cred, matchErr, reason := matchCredential(c, a)
	ev.cred = cred
	keyIssuer := cl.Issuer
	if matchErr != nil {
		d.Check, d.Reason = "credential", reason
		d.Credentials = explainCredentials(c, a)
		keyIssuer = hintIssuer(c, cl.Issuer)
	}
	d.Key = &KeyCheck{Issuer: keyIssuer, KeyID: clip(a.kid)}
	if keyIssuer == "" {
		d.Key.Issuer = ""
		d.Key.Result = "not checked: no credential of this client trusts the token's issuer (or one differing from it only by a trailing '/' or letter case), so its keys are never fetched"
		return publicMatchError(matchErr, false, cl.Subject)
	}
	kctx, kspan := ctx, trace.Span(nil)
	if s.cfg.Tracer != nil {
		kctx, kspan = s.cfg.Tracer.Start(ctx, "trust.issuer_key", trace.WithAttributes(attribute.String("wif.issuer", clip(keyIssuer)), attribute.String("wif.kid", clip(a.kid))))
	}
	keyPol := ti.issuers[keyIssuer]
	if keyPol != nil {
		d.Key.TrustedIssuer = keyPol.name + " (" + string(keyPol.source) + ")"
	}
	key, err := s.issuerKey(kctx, keyPol, keyIssuer, a.kid)
	if kspan != nil {
		if err != nil {
			kspan.SetStatus(codes.Error, "key unavailable")
		}
		kspan.End()
	}
	if err != nil {
		d.Detail = err.Error()
		var ke *Error
		switch {
		case errors.Is(err, ErrUnknownKID):
			d.Key.Result = "kid not among the issuer's keys"
			ke = newError(errInvalidClient, CodeUnknownKID, "The key used to sign the client assertion (kid '%s') was not found among the signing keys published by issuer '%s'.", clip(a.kid), clip(cl.Issuer)).withCause(err).
				withHint("the issuer's JWKS does not list this kid: was its signing key rotated, or is the token from another cluster?")
		case errors.Is(err, ErrIssuerMetadataInvalid) && keyPol != nil && keyPol.source != directory.KeySourceDiscovery:
			d.Key.Result = "keys unavailable: the trusted issuer's " + string(keyPol.source) + " key set has no usable key"
			ke = errExternalOIDC(CodeExternalOIDCInvalid).withCause(err).withHint("%s", nextStep)
		case errors.Is(err, ErrIssuerMetadataInvalid):
			d.Key.Result = "keys unavailable: the issuer's metadata is invalid"
			ke = errExternalOIDC(CodeExternalOIDCInvalid).withCause(err).withHint("%s", nextStep)
		case ctx.Err() != nil:
			d.Key.Result = "keys unavailable: the request ended first"
			ke = errService(err)
		default:
			d.Key.Result = "keys unavailable: fetching the issuer's discovery document or keys failed"
			ke = errExternalOIDC(CodeExternalOIDCFailed).withCause(err).withHint("%s", nextStep)
		}
		if matchErr != nil {
			return publicMatchError(matchErr, false, cl.Subject)
		}
		d.Check, d.Reason = "keys", d.Key.Result
		return ke
	}
	if _, err := a.jws.Verify(key); err != nil {
		d.Key.Result = "signature does not verify: the token was not signed with this issuer's key (forged, altered, or another issuer's)"
		if matchErr != nil {
			return publicMatchError(matchErr, false, cl.Subject)
		}
		d.Check, d.Reason = "signature", "the assertion's signature does not verify with the issuer's key "+clip(a.kid)
		return errMalformedJWT("The signature of the client assertion does not verify with the issuer's key.").withCause(err).
			withHint("the token was not signed by the issuer's key for its kid, or was altered: send the platform's token file as it is")
	}
	d.Key.Result = "signature verified"
	if matchErr != nil {
		ev.verified = true
		if e := publicMatchError(matchErr, true, cl.Subject); e != nil {
			e.Hint = reason
			return e
		}
	}
	return nil
}

// hintIssuer is the issuer whose keys may verify an assertion that matched
// no credential of c: the token's own issuer when some credential trusts
// it, else a credential's issuer differing from it only by a trailing '/'
// or letter case; "" when there is none (its keys are never fetched).
func hintIssuer(c *client, iss string) string {
	for i := range c.creds {
		if c.creds[i].trusts(iss) {
			return iss
		}
	}
	for i := range c.creds {
		for _, f := range c.creds[i].issuerList() {
			if strings.TrimRight(f, "/") == strings.TrimRight(iss, "/") || strings.EqualFold(f, iss) {
				return f
			}
		}
	}
	return ""
}

// publicMatchError is a credential mismatch as a caller may see it: with
// the exact difference once its signature is verified (the hint is set by
// the caller), else with a hint naming nothing configured — and the
// subject-case code, which would confirm a configured subject to anyone,
// only after verification.
func publicMatchError(e *Error, verified bool, sub string) *Error {
	if e == nil || verified {
		return e
	}
	if e.Code == CodeSubjectCaseOnly {
		e = errNoMatchingSubject(sub)
	}
	e.Hint = nextStep
	return e
}

// isOwnToken reports whether an assertion was issued by this service: its
// issuer is one of ours, or it is signed with one of our keys.
func (s *Service) isOwnToken(iss, kid string) bool {
	if strings.HasPrefix(iss, s.cfg.PublicURL+"/") || (s.cfg.EntraIssuerNames && strings.HasPrefix(iss, "https://sts.windows.net/")) {
		return true
	}
	return s.cfg.Signer.IsOwnKey(kid)
}

// clipAudience is aud as the audit log keeps it: at most 4 values, each
// clipped.
func clipAudience(aud []string) []string {
	if len(aud) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(aud), 4))
	for _, a := range aud[:min(len(aud), 4)] {
		out = append(out, clip(a))
	}
	return out
}

// entraTime formats t as Entra does in messages: "2026-11-23 10:00:00Z".
func entraTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// TestResult is the outcome of a credential dry-run.
type TestResult struct {
	// Result is "pass" (an exchange would succeed) or "fail".
	Result string `json:"result"`
	// Code and Error are what the token endpoint would answer on failure.
	Code  int    `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Credential is the credential that matched (on pass).
	Credential string `json:"credential,omitempty"`
	// Diagnosis has every check's verdict.
	Diagnosis Diagnosis `json:"diagnosis"`
}

// ErrUnknownTenant: the dry-run names a tenant this service does not hold.
var ErrUnknownTenant = errors.New("no such tenant")

// TestAssertion runs every check of an exchange of assertion for clientID
// in a tenant — its form, times, the client, each federated credential,
// the issuer's keys, the signature — and reports each verdict with the
// exact differences. It never issues a token. (The admin API's credential
// dry-run: wif identity federated-credential test.)
func (s *Service) TestAssertion(ctx context.Context, tenantID, clientID, assertion string) (TestResult, error) {
	ti := s.dir.load().tenants[lowerASCII(tenantID)]
	if ti == nil {
		return TestResult{}, fmt.Errorf("tenant %s: %w", tenantID, ErrUnknownTenant)
	}
	ev := &evaluation{all: true}
	e := s.evaluate(ctx, ti, clientID, strings.TrimSpace(assertion), ev)
	r := TestResult{Result: "pass", Diagnosis: ev.diag}
	if ev.cred != nil {
		r.Credential = ev.cred.Name
	}
	if e != nil {
		r.Result, r.Code, r.Error = "fail", e.Code, e.Err
		if r.Diagnosis.Reason == "" {
			r.Diagnosis.Reason = e.Description
		}
		if e.cause != nil && r.Diagnosis.Detail == "" {
			r.Diagnosis.Detail = e.cause.Error()
		}
		return r, nil
	}
	r.Diagnosis.Reason = fmt.Sprintf("every check passed: credential '%s' matches and the signature verifies", r.Credential)
	return r, nil
}

// aliased is the resource a request names, through Config.ResourceAliases.
func (s *Service) aliased(resource string) string {
	if len(s.cfg.ResourceAliases) == 0 {
		return resource
	}
	if to, ok := s.cfg.ResourceAliases[strings.ToLower(strings.TrimRight(resource, "/"))]; ok {
		return to
	}
	return resource
}
