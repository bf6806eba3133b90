package admin

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/trust"
)

// TrustedIssuerResource is a tenant's trusted issuer on the wire. The key
// set travels as a JSON object; the fields marked read-only are computed.
type TrustedIssuerResource struct {
	Name      string `json:"name"`
	TenantID  string `json:"tenantId,omitempty"`
	Issuer    string `json:"issuer"`
	KeySource string `json:"keySource"`
	CABundle  string `json:"caBundle,omitempty"`
	// JWKS is the uploaded or pushed JSON Web Key Set.
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	Algorithms              []string        `json:"algorithms,omitempty"`
	MaxTokenLifetimeSeconds int64           `json:"maxTokenLifetimeSeconds,omitempty"`
	RequireKeyUse           bool            `json:"requireKeyUse,omitempty"`
	AllowPrivateAddresses   bool            `json:"allowPrivateAddresses,omitempty"`
	PushClientID            string          `json:"pushClientId,omitempty"`
	KeyOverlapSeconds       int64           `json:"keyOverlapSeconds,omitempty"`
	Description             string          `json:"description,omitempty"`
	// Read-only: when the keys were last uploaded or pushed, what the
	// token service makes of them, and the keys a push retired.
	KeysUpdatedAt *time.Time          `json:"keysUpdatedAt,omitempty"`
	Keys          []KeySummary        `json:"keys,omitempty"`
	SkippedKeys   []string            `json:"skippedKeys,omitempty"`
	RetiredKeys   []RetiredKeySummary `json:"retiredKeys,omitempty"`
	Version       int64               `json:"version,omitempty"`
	CreatedAt     *time.Time          `json:"createdAt,omitempty"`
	UpdatedAt     *time.Time          `json:"updatedAt,omitempty"`
}

// KeySummary names one key of a key set.
type KeySummary struct {
	KID       string `json:"kid"`
	KeyType   string `json:"kty"`
	Algorithm string `json:"alg,omitempty"`
	Use       string `json:"use,omitempty"`
}

// RetiredKeySummary is a key a push removed and until when it verifies.
type RetiredKeySummary struct {
	KID   string    `json:"kid"`
	Until time.Time `json:"until"`
}

// IssuerSetResource is an issuer set on the wire. A credential names it
// with issuer "urn:wif:issuer-set:NAME".
type IssuerSetResource struct {
	Name        string     `json:"name"`
	TenantID    string     `json:"tenantId,omitempty"`
	Issuers     []string   `json:"issuers"`
	Description string     `json:"description,omitempty"`
	Reference   string     `json:"credentialIssuer,omitempty"`
	Version     int64      `json:"version,omitempty"`
	CreatedAt   *time.Time `json:"createdAt,omitempty"`
	UpdatedAt   *time.Time `json:"updatedAt,omitempty"`
}

// PushKeysRequest is a key push: the issuer's current key set.
type PushKeysRequest struct {
	JWKS json.RawMessage `json:"jwks"`
}

// PushKeysResult says what a push changed.
type PushKeysResult struct {
	// Changed is false when the pushed set equals the stored one.
	Changed bool `json:"changed"`
	// Retired are the keys this push removed, still verifying until their
	// time.
	Retired []RetiredKeySummary `json:"retired,omitempty"`
	TrustedIssuerResource
}

// trustedIssuerResource renders t with its keys as the token service reads
// them.
func trustedIssuerResource(t directory.TrustedIssuer) TrustedIssuerResource {
	out := TrustedIssuerResource{
		Name: t.Name, TenantID: t.TenantID, Issuer: t.Issuer, KeySource: string(t.KeySource), CABundle: t.CABundle,
		Algorithms: t.Algorithms, MaxTokenLifetimeSeconds: t.MaxTokenLifetimeSeconds, RequireKeyUse: t.RequireKeyUse,
		AllowPrivateAddresses: t.AllowPrivateAddresses, PushClientID: t.PushClientID, KeyOverlapSeconds: t.KeyOverlapSeconds,
		Description: t.Description, KeysUpdatedAt: timePtr(t.KeysUpdatedAt),
		Version: t.Version, CreatedAt: timePtr(t.CreatedAt), UpdatedAt: timePtr(t.UpdatedAt),
	}
	if t.JWKS != "" {
		out.JWKS = json.RawMessage(t.JWKS)
		if set, err := trust.ParseKeySet([]byte(t.JWKS), trust.KeySetOptions{RequireUse: t.RequireKeyUse}); err != nil {
			out.SkippedKeys = []string{err.Error()}
		} else {
			out.Keys, out.SkippedKeys = summarize(set), set.Skipped
		}
	}
	for _, r := range t.RetiredKeys {
		var k struct {
			KID string `json:"kid"`
		}
		_ = json.Unmarshal(r.Key, &k)
		out.RetiredKeys = append(out.RetiredKeys, RetiredKeySummary{KID: k.KID, Until: r.Until})
	}
	return out
}

func summarize(set trust.ParsedKeySet) []KeySummary {
	out := make([]KeySummary, 0, len(set.Keys))
	for _, k := range set.Keys {
		kty := "OKP"
		switch k.Key.(type) {
		case *rsa.PublicKey:
			kty = "RSA"
		case *ecdsa.PublicKey:
			kty = "EC"
		}
		out = append(out, KeySummary{KID: k.KeyID, KeyType: kty, Algorithm: k.Algorithm, Use: k.Use})
	}
	return out
}

func issuerSetResource(s directory.IssuerSet) IssuerSetResource {
	return IssuerSetResource{Name: s.Name, TenantID: s.TenantID, Issuers: s.Issuers, Description: s.Description,
		Reference: directory.IssuerSetPrefix + s.Name, Version: s.Version, CreatedAt: timePtr(s.CreatedAt), UpdatedAt: timePtr(s.UpdatedAt)}
}

// checkKeySet parses an uploaded or pushed key set as the token service
// will: it must hold at least one usable signing key with a kid.
func checkKeySet(field string, raw []byte, requireUse bool) (string, error) {
	b, err := trust.UsableKeySet(raw, requireUse)
	if err != nil {
		return "", &directory.ValidationError{Field: field, Rule: err.Error()}
	}
	return string(b), nil
}

func (h *Handler) listTrustedIssuers(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	ts, err := h.cfg.Store.ListTrustedIssuers(r.Context(), tid)
	if err != nil {
		return notFound(err, "tenant %s", tid)
	}
	out := make([]TrustedIssuerResource, len(ts))
	for i, t := range ts {
		out[i] = trustedIssuerResource(t)
	}
	return page(w, r, out)
}

func (h *Handler) getTrustedIssuer(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("issuerName")
	t, err := h.cfg.Store.GetTrustedIssuer(r.Context(), tid, name)
	if err != nil {
		return notFound(err, "trusted issuer %q", name)
	}
	return respond(w, http.StatusOK, ETag(t.Version), trustedIssuerResource(t))
}

// mayAllowPrivate refuses allowPrivateAddresses to all but the operator:
// it lets the token service reach internal addresses, an installation's
// concern, never a tenant's.
func mayAllowPrivate(r *http.Request) error {
	c := callerFrom(r)
	if c.Unrestricted || c.Operator && slices.Contains(c.Roles, RoleReadWriteAll) {
		return nil
	}
	return fmt.Errorf("%w: allowPrivateAddresses lets the token service fetch from loopback, link-local and private addresses; only the operator tenant's %s may set it (or the operator's wif serve --allow-private-issuers)", ErrForbidden, RoleReadWriteAll)
}

func (h *Handler) putTrustedIssuer(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("issuerName")
	var in TrustedIssuerResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return &directory.ValidationError{Field: "name", Rule: "must match the name in the path, " + name + " (names are immutable)", Value: in.Name}
	}
	if in.KeySource == "" {
		in.KeySource = string(directory.KeySourceDiscovery)
		if len(in.JWKS) > 0 {
			in.KeySource = string(directory.KeySourceJWKS)
		}
	}
	jwks := ""
	if len(in.JWKS) > 0 && string(in.JWKS) != "null" {
		if jwks, err = checkKeySet("jwks", in.JWKS, in.RequireKeyUse); err != nil {
			return err
		}
	}
	ctx := r.Context()
	old, err := h.cfg.Store.GetTrustedIssuer(ctx, tid, name)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := putPreconditions(r, fmt.Sprintf("trusted issuer %q", name), exists); err != nil {
		return err
	}
	// Keeping the operator's allowance is fine; turning it on, or pointing
	// an allowed object at another issuer, is the operator's call.
	if in.AllowPrivateAddresses && !(exists && old.AllowPrivateAddresses && old.Issuer == in.Issuer) {
		if err := mayAllowPrivate(r); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	set := func(t *directory.TrustedIssuer) {
		t.Issuer, t.KeySource, t.CABundle = in.Issuer, directory.KeySource(in.KeySource), in.CABundle
		t.Algorithms, t.MaxTokenLifetimeSeconds, t.RequireKeyUse = in.Algorithms, in.MaxTokenLifetimeSeconds, in.RequireKeyUse
		t.AllowPrivateAddresses, t.PushClientID, t.KeyOverlapSeconds, t.Description = in.AllowPrivateAddresses, in.PushClientID, in.KeyOverlapSeconds, in.Description
		// A pushed issuer's keys are the agent's: a PUT without jwks keeps them.
		if jwks != "" || t.KeySource != directory.KeySourcePushed {
			if jwks != t.JWKS {
				t.KeysUpdatedAt = now
				t.RetiredKeys = nil
			}
			t.JWKS = jwks
		}
		if t.KeySource != directory.KeySourcePushed {
			t.RetiredKeys = nil
		}
		if t.JWKS == "" {
			t.KeysUpdatedAt = time.Time{}
		}
	}
	var t directory.TrustedIssuer
	if !exists {
		t = directory.TrustedIssuer{TenantID: tid, Name: name}
		set(&t)
		t, err = h.cfg.Store.CreateTrustedIssuer(ctx, t)
	} else {
		t, err = h.cfg.Store.UpdateTrustedIssuer(ctx, tid, name, func(t *directory.TrustedIssuer) error {
			if err := ifMatch(r, t.Version); err != nil {
				return err
			}
			set(t)
			return nil
		})
	}
	if err != nil {
		return err
	}
	return respond(w, statusFor(!exists), ETag(t.Version), trustedIssuerResource(t))
}

func (h *Handler) deleteTrustedIssuer(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("issuerName")
	if err := h.cfg.Store.DeleteTrustedIssuer(r.Context(), tid, name, ifMatchDelete(r)); err != nil {
		return notFound(err, "trusted issuer %q", name)
	}
	return noContent(w)
}

// pushKeys replaces a pushed issuer's keys with the pushed set; keys it no
// longer holds keep verifying for the object's overlap, so a service-
// account key rotation never breaks tokens already handed out. The agent
// named by pushClientId may push without any admin role.
func (h *Handler) pushKeys(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("issuerName")
	var in PushKeysRequest
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if len(in.JWKS) == 0 {
		return &directory.ValidationError{Field: "jwks", Rule: "is required: the issuer's JSON Web Key Set, as its API server serves it at /openid/v1/jwks"}
	}
	ctx := r.Context()
	cur, err := h.pushedIssuer(r, tid, name)
	if err != nil {
		return err
	}
	if cur.KeySource != directory.KeySourcePushed {
		return errorf(http.StatusConflict, CodeConflict, "trusted issuer %q takes its keys by %s, not by push: set keySource to %q to let an agent keep them current", name, cur.KeySource, directory.KeySourcePushed)
	}
	jwks, err := checkKeySet("jwks", in.JWKS, cur.RequireKeyUse)
	if err != nil {
		return err
	}
	var res PushKeysResult
	t, err := h.cfg.Store.UpdateTrustedIssuer(ctx, tid, name, func(t *directory.TrustedIssuer) error {
		res = PushKeysResult{}
		if t.KeySource != directory.KeySourcePushed {
			return errorf(http.StatusConflict, CodeConflict, "trusted issuer %q no longer takes its keys by push", name)
		}
		now := time.Now().UTC()
		retired := retire(t, jwks, now)
		if jwks == t.JWKS && len(retired) == len(t.RetiredKeys) {
			return errUnchanged
		}
		res.Changed = jwks != t.JWKS
		if res.Changed {
			t.KeysUpdatedAt = now
		}
		t.JWKS, t.RetiredKeys = jwks, retired
		return nil
	})
	if errors.Is(err, errUnchanged) {
		t, err = cur, nil
	}
	if err != nil {
		return err
	}
	res.TrustedIssuerResource = trustedIssuerResource(t)
	for _, k := range res.TrustedIssuerResource.RetiredKeys {
		res.Retired = append(res.Retired, k)
	}
	return respond(w, http.StatusOK, ETag(t.Version), res)
}

var errUnchanged = errors.New("unchanged")

// pushedIssuer reads a trusted issuer for its push client (or an admin):
// a caller let through only as pushOnly must be the object's pushClientId
// in the object's tenant.
func (h *Handler) pushedIssuer(r *http.Request, tid, name string) (directory.TrustedIssuer, error) {
	cur, err := h.cfg.Store.GetTrustedIssuer(r.Context(), tid, name)
	c := callerFrom(r)
	if c.pushOnly && (err != nil || cur.PushClientID == "" || !strings.EqualFold(c.ClientID, cur.PushClientID) || !strings.EqualFold(c.TenantID, tid)) {
		// The same answer whether or not the object exists.
		return directory.TrustedIssuer{}, fmt.Errorf("%w: the token's client %s is not the pushClientId of a trusted issuer %q in tenant %s, and it holds no %s there", ErrForbidden, c.ClientID, name, tid, RoleReadWriteAll)
	}
	if err != nil {
		return directory.TrustedIssuer{}, notFound(err, "trusted issuer %q", name)
	}
	return cur, nil
}

func (h *Handler) getPushedIssuer(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	t, err := h.pushedIssuer(r, tid, r.PathValue("issuerName"))
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, ETag(t.Version), trustedIssuerResource(t))
}

// retire computes a pushed issuer's retired keys after a push of jwks:
// keys of the stored set that the push drops are kept until now + the
// overlap; expired ones and ones the push brings back are dropped.
func retire(t *directory.TrustedIssuer, jwks string, now time.Time) []directory.RetiredKey {
	kids := func(doc string) map[string]json.RawMessage {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		_ = json.Unmarshal([]byte(doc), &set)
		out := map[string]json.RawMessage{}
		for _, k := range set.Keys {
			var h struct {
				KID string `json:"kid"`
			}
			if json.Unmarshal(k, &h) == nil && h.KID != "" {
				out[h.KID] = k
			}
		}
		return out
	}
	next := kids(jwks)
	var out []directory.RetiredKey
	seen := map[string]bool{}
	for _, r := range t.RetiredKeys {
		var h struct {
			KID string `json:"kid"`
		}
		_ = json.Unmarshal(r.Key, &h)
		if _, back := next[h.KID]; back || !now.Before(r.Until) || seen[h.KID] {
			continue
		}
		seen[h.KID] = true
		out = append(out, r)
	}
	for kid, k := range kids(t.JWKS) {
		if _, kept := next[kid]; !kept && !seen[kid] {
			out = append(out, directory.RetiredKey{Key: k, Until: now.Add(t.KeyOverlap())})
		}
	}
	slices.SortFunc(out, func(a, b directory.RetiredKey) int { return a.Until.Compare(b.Until) })
	// Bounded: an agent pushing ever new keys keeps only the newest.
	if n := len(out) - directory.MaxRetiredKeys; n > 0 {
		out = out[n:]
	}
	return out
}

func (h *Handler) listIssuerSets(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	ss, err := h.cfg.Store.ListIssuerSets(r.Context(), tid)
	if err != nil {
		return notFound(err, "tenant %s", tid)
	}
	out := make([]IssuerSetResource, len(ss))
	for i, s := range ss {
		out[i] = issuerSetResource(s)
	}
	return page(w, r, out)
}

func (h *Handler) getIssuerSet(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("setName")
	s, err := h.cfg.Store.GetIssuerSet(r.Context(), tid, name)
	if err != nil {
		return notFound(err, "issuer set %q", name)
	}
	return respond(w, http.StatusOK, ETag(s.Version), issuerSetResource(s))
}

func (h *Handler) putIssuerSet(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("setName")
	var in IssuerSetResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return &directory.ValidationError{Field: "name", Rule: "must match the name in the path, " + name + " (names are immutable)", Value: in.Name}
	}
	ctx := r.Context()
	_, err = h.cfg.Store.GetIssuerSet(ctx, tid, name)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := putPreconditions(r, fmt.Sprintf("issuer set %q", name), exists); err != nil {
		return err
	}
	var s directory.IssuerSet
	if !exists {
		s, err = h.cfg.Store.CreateIssuerSet(ctx, directory.IssuerSet{TenantID: tid, Name: name, Issuers: in.Issuers, Description: in.Description})
	} else {
		s, err = h.cfg.Store.UpdateIssuerSet(ctx, tid, name, func(s *directory.IssuerSet) error {
			if err := ifMatch(r, s.Version); err != nil {
				return err
			}
			s.Issuers, s.Description = in.Issuers, in.Description
			return nil
		})
	}
	if err != nil {
		return err
	}
	return respond(w, statusFor(!exists), ETag(s.Version), issuerSetResource(s))
}

func (h *Handler) deleteIssuerSet(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("setName")
	if err := h.cfg.Store.DeleteIssuerSet(r.Context(), tid, name, ifMatchDelete(r)); err != nil {
		return notFound(err, "issuer set %q", name)
	}
	return noContent(w)
}
