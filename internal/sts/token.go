package sts

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// accessClaims are the claims of an access token (spec/sts.md §5). Field
// order follows Entra's tokens.
type accessClaims struct {
	Aud      string   `json:"aud"`
	Iss      string   `json:"iss"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	Aio      string   `json:"aio"`
	AppID    string   `json:"appid,omitempty"`
	AppIDAcr string   `json:"appidacr,omitempty"`
	Azp      string   `json:"azp,omitempty"`
	AzpAcr   string   `json:"azpacr,omitempty"`
	IdP      string   `json:"idp,omitempty"`
	IdTyp    string   `json:"idtyp"`
	Oid      string   `json:"oid"`
	Rh       string   `json:"rh"`
	Roles    []string `json:"roles,omitempty"`
	Sub      string   `json:"sub"`
	Tid      string   `json:"tid"`
	Uti      string   `json:"uti"`
	Ver      string   `json:"ver"`
	XmsMirid string   `json:"xms_mirid,omitempty"`
}

// issuerV1 and issuerV2 are the token issuers of a tenant.
func (s *Service) issuerV1(tid string) string {
	if s.cfg.EntraIssuerNames {
		return "https://sts.windows.net/" + tid + "/"
	}
	return s.cfg.PublicURL + "/" + tid + "/"
}

func (s *Service) issuerV2(tid string) string {
	return s.cfg.PublicURL + "/" + tid + "/v2.0"
}

// newOpaque returns n random bytes as base64url: uti, aio and rh are opaque
// to clients.
func newOpaque(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// issued is a minted access token.
type issued struct {
	token     string
	version   int
	lifetime  time.Duration
	expiresAt time.Time
	notBefore time.Time
	claims    *accessClaims
}

// mint builds and signs an access token for caller c on resource r, as the
// resource's requestedAccessTokenVersion asks. requested is the resource
// exactly as the client named it (v1 aud).
func (s *Service) mint(tid string, c *client, r *resource, requested string, now time.Time) (*issued, error) {
	version := r.app.AccessTokenVersion()
	lifetime := s.cfg.TokenLifetime
	iat := now.Unix()
	cl := &accessClaims{
		Iat:   iat,
		Nbf:   iat,
		Exp:   iat + int64(lifetime/time.Second),
		Aio:   newOpaque(48),
		IdTyp: "app",
		Oid:   c.principalID,
		Rh:    "0." + newOpaque(36) + ".",
		Roles: r.roles[lowerASCII(c.principalID)],
		Sub:   c.principalID,
		Tid:   tid,
		Uti:   newOpaque(16),
	}
	if c.mirid != "" {
		cl.XmsMirid = c.mirid
	}
	if version == 2 {
		cl.Aud = r.app.AppID
		cl.Iss = s.issuerV2(tid)
		cl.Azp, cl.AzpAcr = c.clientID, "2"
		cl.Ver = "2.0"
	} else {
		cl.Aud = requested
		cl.Iss = s.issuerV1(tid)
		cl.IdP = cl.Iss
		cl.AppID, cl.AppIDAcr = c.clientID, "2"
		cl.Ver = "1.0"
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return nil, fmt.Errorf("encode access token claims: %w", err)
	}
	tok, err := s.cfg.Signer.Sign(payload, version == 1)
	if err != nil {
		return nil, fmt.Errorf("sign access token: %w", err)
	}
	return &issued{token: tok, version: version, lifetime: lifetime, expiresAt: time.Unix(cl.Exp, 0), notBefore: time.Unix(cl.Nbf, 0), claims: cl}, nil
}

// v2Response is the body of a successful v2 (and v1 JSON-int style) reply.
type v2Response struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	RefreshIn    int64  `json:"refresh_in,omitempty"`
	AccessToken  string `json:"access_token"`
}

// v1Response is Entra's v1 endpoint reply: numbers as strings, plus
// expires_on, not_before and resource.
type v1Response struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    string `json:"expires_in"`
	ExtExpiresIn string `json:"ext_expires_in"`
	ExpiresOn    string `json:"expires_on"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	AccessToken  string `json:"access_token"`
}

// exchangeResponse is RFC 8693's reply.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// expiresIn is the lifetime as Entra reports it: one second short.
func (t *issued) expiresIn() int64 { return int64(t.lifetime/time.Second) - 1 }

func (t *issued) response(req *tokenRequest) any {
	switch {
	case req.grantType == GrantTokenExchange:
		return exchangeResponse{AccessToken: t.token, IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", ExpiresIn: t.expiresIn(), Scope: req.scope}
	case req.endpoint == 1:
		n := strconv.FormatInt(t.expiresIn(), 10)
		return v1Response{TokenType: "Bearer", ExpiresIn: n, ExtExpiresIn: n,
			ExpiresOn: strconv.FormatInt(t.expiresAt.Unix(), 10), NotBefore: strconv.FormatInt(t.notBefore.Unix(), 10),
			Resource: req.resource, AccessToken: t.token}
	default:
		r := v2Response{TokenType: "Bearer", ExpiresIn: t.expiresIn(), ExtExpiresIn: t.expiresIn(), AccessToken: t.token}
		if t.lifetime >= 2*time.Hour {
			r.RefreshIn = int64(t.lifetime/time.Second) / 2
		}
		return r
	}
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
