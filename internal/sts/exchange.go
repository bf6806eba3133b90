package sts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/store"
)

// maxAssertionLifetime is Entra's bound on exp - iat.
const maxAssertionLifetime = 25 * time.Hour

// exchange runs the checks of spec/sts.md §4, in order, for one token
// request, and mints the access token. rec is filled for the audit log as
// the checks learn more.
func (s *Service) exchange(ctx context.Context, tenantSeg string, req *tokenRequest, rec *store.AuditRecord) (*issued, *Error) {
	idx := s.dir.load()
	ti := idx.tenants[lowerASCII(tenantSeg)]
	if ti == nil {
		return nil, errTenantNotFound(tenantSeg)
	}
	tid := ti.tenant.ID
	rec.TenantID = tid

	a, e := parseAssertion(req.assertion)
	if e != nil {
		return nil, e
	}
	cl := &a.claims
	rec.Issuer, rec.Subject = cl.Issuer, cl.Subject
	if cl.JTI != "" {
		sum := sha256.Sum256([]byte(cl.JTI))
		rec.JTIHash = hex.EncodeToString(sum[:])
	}
	for _, missing := range []struct{ name, value string }{{"iss", cl.Issuer}, {"sub", cl.Subject}} {
		if missing.value == "" {
			return nil, errMalformedJWT(fmt.Sprintf("The assertion has no %s claim.", missing.name))
		}
	}
	if len(cl.Audience) == 0 {
		return nil, errMalformedJWT("The assertion has no aud claim.")
	}
	if cl.IssuedAt == nil {
		return nil, newError(errInvalidRequest, CodeAssertionLifetime, "The client assertion has no 'iat' claim.")
	}
	if cl.Expiry == nil {
		return nil, errMalformedJWT("The assertion has no exp claim.")
	}
	if life := cl.Expiry.Sub(*cl.IssuedAt); life > maxAssertionLifetime {
		return nil, newError(errInvalidRequest, CodeAssertionLifetime, "The client assertion's lifetime (exp - iat) is %s; it must not exceed 25 hours.", life.Round(time.Second)).
			withHint("request shorter-lived platform tokens (a Kubernetes projected token's expirationSeconds, for example)")
	}
	now := s.cfg.Now()
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
		return nil, e
	}
	if s.isOwnToken(cl.Issuer, a.kid) {
		return nil, newError(errInvalidClient, CodeEntraIssuedAssertion, "AAD-issued tokens may not be used for federated identity flows.").
			withHint("send the platform's token (for example the Kubernetes service-account token file), not an access token from this service")
	}

	c := ti.clients[lowerASCII(req.clientID)]
	if c == nil {
		return nil, errClientNotFound(req.clientID, tid)
	}
	rec.ClientID = c.clientID

	cred, e := matchCredential(c, a)
	if e != nil {
		if req.grantType == GrantTokenExchange {
			e.Err, e.Status = errInvalidRequest, 400 // RFC 8693 §2.2.2: an unacceptable subject_token is invalid_request
		}
		return nil, e
	}
	rec.CredentialName = cred.Name

	key, err := s.cfg.Keys.Key(ctx, cl.Issuer, a.kid)
	if err != nil {
		switch {
		case errors.Is(err, ErrUnknownKID):
			return nil, newError(errInvalidClient, CodeUnknownKID, "The key used to sign the client assertion (kid '%s') was not found among the signing keys published by issuer '%s'.", a.kid, cl.Issuer).withCause(err).
				withHint("the issuer's JWKS does not list this kid: was its signing key rotated, or is the token from another cluster?")
		case errors.Is(err, ErrIssuerMetadataInvalid):
			return nil, errExternalOIDC(CodeExternalOIDCInvalid).withCause(err).withHint("%s", hintFromKeyError(err))
		case ctx.Err() != nil:
			return nil, errService(err)
		default:
			return nil, errExternalOIDC(CodeExternalOIDCFailed).withCause(err).withHint("%s", hintFromKeyError(err))
		}
	}
	if _, err := a.jws.Verify(key); err != nil {
		return nil, errMalformedJWT("The signature of the client assertion does not verify with the issuer's key.").withCause(err)
	}

	r := ti.lookupResource(req.resource)
	if r == nil {
		e := errResourceNotFound(req.resource, tid)
		if req.grantType == GrantTokenExchange {
			e.Err = errInvalidTarget
		}
		return nil, e
	}
	rec.Resource = r.app.AppID
	tok, err := s.mint(tid, c, r, req.resource, now)
	if err != nil {
		return nil, errService(err)
	}
	return tok, nil
}

// hintFromKeyError gives the key source's reason (which URL failed and
// why) as the hint; it names no secret.
func hintFromKeyError(err error) string {
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// isOwnToken reports whether an assertion was issued by this service: its
// issuer is one of ours, or it is signed with one of our keys.
func (s *Service) isOwnToken(iss, kid string) bool {
	if strings.HasPrefix(iss, s.cfg.PublicURL+"/") || (s.cfg.EntraIssuerNames && strings.HasPrefix(iss, "https://sts.windows.net/")) {
		return true
	}
	return s.cfg.Signer.IsOwnKey(kid)
}

// entraTime formats t as Entra does in messages: "2026-11-23 10:00:00Z".
func entraTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
