// Package rules holds what every store backend does the same way: putting
// objects into canonical form (lower-case GUIDs, UTC microsecond times, nil
// for empty collections), the checks on updates (immutable fields, metadata),
// the natural keys that uniqueness is judged on, and the audit log's cursor
// and limits. The memory, SQLite and PostgreSQL backends all call it, so they
// cannot drift apart on these rules.
package rules

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// Audit page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// Time puts t in the form stores keep: UTC, truncated to the microsecond.
// The zero time stays zero.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Micros is t as microseconds since the Unix epoch, 0 for the zero time.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// FromMicros is the inverse of Micros.
func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Clock returns now as stores record it, defaulting to time.Now.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		now = time.Now
	}
	return func() time.Time { return Time(now()) }
}

// Key lower-cases a natural key (names, resource groups) that compares
// case-insensitively.
func Key(s string) string { return strings.ToLower(s) }

// URIKey is the key an identifier URI is unique on within a tenant: lower
// case, without trailing slashes (the token service resolves a resource
// with or without them, so two applications may not differ only there).
func URIKey(u string) string {
	k := strings.TrimRight(strings.ToLower(u), "/")
	if k == "" {
		return strings.ToLower(u)
	}
	return k
}

// AuditID lower-cases s if it is a GUID and leaves anything else (a tenant
// name typed in a URL, say) as the caller gave it.
func AuditID(s string) string {
	if directory.IsGUID(s) {
		return directory.CanonicalID(s)
	}
	return s
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// Tenant returns t in canonical form.
func Tenant(t directory.Tenant) directory.Tenant {
	t.ID = directory.CanonicalID(t.ID)
	return t
}

// Application returns a deep copy of a in canonical form.
func Application(a directory.Application) directory.Application {
	a.TenantID = directory.CanonicalID(a.TenantID)
	a.AppID = directory.CanonicalID(a.AppID)
	a.ObjectID = directory.CanonicalID(a.ObjectID)
	a.ServicePrincipalID = directory.CanonicalID(a.ServicePrincipalID)
	a.IdentifierURIs = nilIfEmpty(slices.Clone(a.IdentifierURIs))
	if len(a.AppRoles) == 0 {
		a.AppRoles = nil
	} else {
		roles := make([]directory.AppRole, len(a.AppRoles))
		for i, r := range a.AppRoles {
			r.ID = directory.CanonicalID(r.ID)
			r.AllowedMemberTypes = nilIfEmpty(slices.Clone(r.AllowedMemberTypes))
			roles[i] = r
		}
		a.AppRoles = roles
	}
	return a
}

// ManagedIdentity returns a deep copy of m in canonical form.
func ManagedIdentity(m directory.ManagedIdentity) directory.ManagedIdentity {
	m.TenantID = directory.CanonicalID(m.TenantID)
	m.SubscriptionID = directory.CanonicalID(m.SubscriptionID)
	m.ClientID = directory.CanonicalID(m.ClientID)
	m.PrincipalID = directory.CanonicalID(m.PrincipalID)
	if len(m.Tags) == 0 {
		m.Tags = nil
	} else {
		m.Tags = maps.Clone(m.Tags)
	}
	return m
}

// Credential returns a deep copy of f in canonical form.
func Credential(f directory.FederatedCredential) directory.FederatedCredential {
	f.TenantID = directory.CanonicalID(f.TenantID)
	f.ParentClientID = directory.CanonicalID(f.ParentClientID)
	f.ID = directory.CanonicalID(f.ID)
	f.Audiences = nilIfEmpty(slices.Clone(f.Audiences))
	if f.ClaimsMatchingExpression != nil {
		e := *f.ClaimsMatchingExpression
		f.ClaimsMatchingExpression = &e
	}
	return f
}

// Assignment returns a in canonical form.
func Assignment(a directory.AppRoleAssignment) directory.AppRoleAssignment {
	a.TenantID = directory.CanonicalID(a.TenantID)
	a.ID = directory.CanonicalID(a.ID)
	a.PrincipalID = directory.CanonicalID(a.PrincipalID)
	a.ResourceAppID = directory.CanonicalID(a.ResourceAppID)
	a.AppRoleID = directory.CanonicalID(a.AppRoleID)
	return a
}

// SigningKey returns a deep copy of k with its times in canonical form.
func SigningKey(k store.SigningKey) store.SigningKey {
	k.PrivateKey = slices.Clone(k.PrivateKey)
	k.Certificate = slices.Clone(k.Certificate)
	k.CreatedAt = Time(k.CreatedAt)
	k.PublishAt = Time(k.PublishAt)
	k.ActivateAt = Time(k.ActivateAt)
	k.RetireAt = Time(k.RetireAt)
	k.ExpireAt = Time(k.ExpireAt)
	k.RevokedAt = Time(k.RevokedAt)
	return k
}

// NewMeta is the metadata of a new object.
func NewMeta(now time.Time) directory.Meta {
	return directory.Meta{Version: 1, CreatedAt: now, UpdatedAt: now}
}

// NextMeta is the metadata of an object after an update: one version on,
// the same creation time, and an update time later than the last one even
// if the clock has not moved.
func NextMeta(old directory.Meta, now time.Time) directory.Meta {
	if !now.After(old.UpdatedAt) {
		now = old.UpdatedAt.Add(time.Microsecond)
	}
	return directory.Meta{Version: old.Version + 1, CreatedAt: old.CreatedAt, UpdatedAt: now}
}

type immutable struct {
	field, was, now string
	same            bool
}

func checkImmutable(fields ...immutable) error {
	var errs directory.ValidationErrors
	for _, f := range fields {
		if !f.same {
			errs = append(errs, &directory.ValidationError{
				Field: f.field, Value: f.now,
				Rule: fmt.Sprintf("cannot be changed (is %q); delete the object and create a new one instead", f.was),
			})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func same(field, was, now string) immutable {
	return immutable{field: field, was: was, now: now, same: was == now}
}

// Apply is the update step every backend runs inside its transaction: the
// caller's closure changes a copy (clone) of old, then updated checks the
// result against old (immutable fields, validation) and stamps its Meta
// with now(), read after the closure ran. A refusal of updated is wrapped
// as "update <what>: ..."; an error of the closure is returned as it is.
func Apply[T any](old T, clone func(T) T, update func(*T) error, updated func(old, v T, now time.Time) (T, error), now func() time.Time, what string) (T, error) {
	v := clone(old)
	if err := update(&v); err != nil {
		return v, err
	}
	v, err := updated(old, v, now())
	if err != nil {
		return v, fmt.Errorf("update %s: %w", what, err)
	}
	return v, nil
}

// UpdatedTenant canonicalises the result of an update closure, checks that
// no immutable field changed, advances the metadata and validates.
func UpdatedTenant(old, t directory.Tenant, now time.Time) (directory.Tenant, error) {
	t = Tenant(t)
	if err := checkImmutable(same("id", old.ID, t.ID)); err != nil {
		return t, err
	}
	t.Meta = NextMeta(old.Meta, now)
	return t, t.Validate()
}

// UpdatedApplication is UpdatedTenant for applications.
func UpdatedApplication(old, a directory.Application, now time.Time) (directory.Application, error) {
	a = Application(a)
	if err := checkImmutable(
		same("tenantId", old.TenantID, a.TenantID),
		same("appId", old.AppID, a.AppID),
		same("id", old.ObjectID, a.ObjectID),
		same("servicePrincipalId", old.ServicePrincipalID, a.ServicePrincipalID),
	); err != nil {
		return a, err
	}
	a.Meta = NextMeta(old.Meta, now)
	return a, a.Validate()
}

// UpdatedManagedIdentity is UpdatedTenant for managed identities.
func UpdatedManagedIdentity(old, m directory.ManagedIdentity, now time.Time) (directory.ManagedIdentity, error) {
	m = ManagedIdentity(m)
	if err := checkImmutable(
		same("tenantId", old.TenantID, m.TenantID),
		same("subscriptionId", old.SubscriptionID, m.SubscriptionID),
		same("resourceGroup", old.ResourceGroup, m.ResourceGroup),
		same("name", old.Name, m.Name),
		same("clientId", old.ClientID, m.ClientID),
		same("principalId", old.PrincipalID, m.PrincipalID),
	); err != nil {
		return m, err
	}
	m.Meta = NextMeta(old.Meta, now)
	return m, m.Validate()
}

// UpdatedCredential is UpdatedTenant for federated credentials; the caller
// still runs ValidateSet against the siblings.
func UpdatedCredential(old, f directory.FederatedCredential, now time.Time) (directory.FederatedCredential, error) {
	f = Credential(f)
	if err := checkImmutable(
		same("tenantId", old.TenantID, f.TenantID),
		same("parentKind", string(old.ParentKind), string(f.ParentKind)),
		same("parentClientId", old.ParentClientID, f.ParentClientID),
		same("id", old.ID, f.ID),
		same("name", old.Name, f.Name),
	); err != nil {
		return f, err
	}
	f.Meta = NextMeta(old.Meta, now)
	return f, f.Validate()
}

// Siblings returns the credentials of all that belong to f's parent, except
// f itself (matched by id).
func Siblings(f directory.FederatedCredential, all []directory.FederatedCredential) []directory.FederatedCredential {
	var out []directory.FederatedCredential
	for _, s := range all {
		if s.TenantID == f.TenantID && s.ParentClientID == f.ParentClientID && s.ID != f.ID {
			out = append(out, s)
		}
	}
	return out
}

// SameName reports whether a sibling already has f's name (names compare
// case-insensitively).
func SameName(f directory.FederatedCredential, siblings []directory.FederatedCredential) bool {
	for _, s := range siblings {
		if strings.EqualFold(s.Name, f.Name) {
			return true
		}
	}
	return false
}

// Audit returns r as it is stored: an id assigned when empty, the time in
// UTC microseconds (now when zero), GUIDs in lower case.
func Audit(r store.AuditRecord, now time.Time) store.AuditRecord {
	if r.ID == "" {
		r.ID = directory.NewID()
	}
	if r.Time.IsZero() {
		r.Time = now
	}
	r.Time = Time(r.Time)
	r.TenantID = AuditID(r.TenantID)
	r.ClientID = AuditID(r.ClientID)
	r.Audience = slices.Clone(r.Audience)
	if r.Count < 1 {
		r.Count = 1
	}
	return r
}

// AuditQuery is an AuditFilter ready to run: canonical ids and times, a
// bounded limit and a decoded cursor.
type AuditQuery struct {
	store.AuditFilter
	// SinceUS and UntilUS are the bounds in microseconds; 0 means none.
	SinceUS, UntilUS int64
	// HasCursor says whether AfterUS and AfterSeq hold a position: results
	// then start strictly after (AfterUS, AfterSeq) in newest-first order.
	HasCursor bool
	AfterUS   int64
	AfterSeq  int64
}

// ParseAuditFilter checks and normalises f. A malformed cursor is an error
// matching directory.ErrInvalid.
func ParseAuditFilter(f store.AuditFilter) (AuditQuery, error) {
	q := AuditQuery{AuditFilter: f}
	q.TenantID = AuditID(f.TenantID)
	q.ClientID = AuditID(f.ClientID)
	q.SinceUS = Micros(Time(f.Since))
	q.UntilUS = Micros(Time(f.Until))
	switch {
	case f.Limit <= 0:
		q.Limit = DefaultAuditLimit
	case f.Limit > MaxAuditLimit:
		q.Limit = MaxAuditLimit
	}
	if f.After != "" {
		us, seq, err := decodeCursor(f.After)
		if err != nil {
			return q, &directory.ValidationError{Field: "after", Value: f.After, Rule: "must be a cursor returned as nextCursor by an earlier page"}
		}
		q.HasCursor, q.AfterUS, q.AfterSeq = true, us, seq
	}
	return q, nil
}

// Cursor encodes the position of a record (its time and sequence number)
// as an opaque cursor.
func Cursor(timeUS, seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a1:" + strconv.FormatInt(timeUS, 10) + ":" + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, err
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "a1" {
		return 0, 0, fmt.Errorf("bad cursor")
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return us, seq, nil
}

// SortTenants orders tenants as every backend lists them: by id.
func SortTenants(ts []directory.Tenant) {
	slices.SortFunc(ts, func(a, b directory.Tenant) int { return strings.Compare(a.ID, b.ID) })
}

// SortApplications orders applications by tenant, then appId.
func SortApplications(as []directory.Application) {
	slices.SortFunc(as, func(a, b directory.Application) int {
		return cmpStrings(a.TenantID, b.TenantID, a.AppID, b.AppID)
	})
}

// SortManagedIdentities orders identities by tenant, subscription, resource
// group and name (the last two case-insensitively).
func SortManagedIdentities(ms []directory.ManagedIdentity) {
	slices.SortFunc(ms, func(a, b directory.ManagedIdentity) int {
		return cmpStrings(a.TenantID, b.TenantID, a.SubscriptionID, b.SubscriptionID,
			Key(a.ResourceGroup), Key(b.ResourceGroup), Key(a.Name), Key(b.Name))
	})
}

// CompareIdentityKey compares an identity of one tenant with ref in the
// order of SortManagedIdentities.
func CompareIdentityKey(sub, group, name string, ref store.IdentityRef) int {
	return cmpStrings(directory.CanonicalID(sub), directory.CanonicalID(ref.SubscriptionID), Key(group), Key(ref.ResourceGroup), Key(name), Key(ref.Name))
}

// SortCredentials orders credentials by tenant, parent, then name
// (case-insensitively).
func SortCredentials(fs []directory.FederatedCredential) {
	slices.SortFunc(fs, func(a, b directory.FederatedCredential) int {
		return cmpStrings(a.TenantID, b.TenantID, a.ParentClientID, b.ParentClientID, Key(a.Name), Key(b.Name))
	})
}

// SortAssignments orders assignments by tenant, then id.
func SortAssignments(as []directory.AppRoleAssignment) {
	slices.SortFunc(as, func(a, b directory.AppRoleAssignment) int {
		return cmpStrings(a.TenantID, b.TenantID, a.ID, b.ID)
	})
}

// SortSigningKeys orders keys oldest first (then by id).
func SortSigningKeys(ks []store.SigningKey) {
	slices.SortFunc(ks, func(a, b store.SigningKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// cmpStrings compares pairs (a0, b0), (a1, b1), ... in turn.
func cmpStrings(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}

// AssignmentPrecheck validates the fields of an assignment that do not
// depend on the resource application (the GUIDs), so that a malformed id
// is reported as invalid rather than as not found.
func AssignmentPrecheck(a directory.AppRoleAssignment) error {
	return a.Validate(directory.Application{AppRoles: []directory.AppRole{{
		ID: a.AppRoleID, IsEnabled: true, AllowedMemberTypes: []string{directory.MemberTypeApplication},
	}}})
}

// DroppedRoles lists the ids of the app roles old has and updated has not:
// their assignments are deleted with them.
func DroppedRoles(old, updated directory.Application) []string {
	kept := map[string]bool{}
	for _, r := range updated.AppRoles {
		kept[strings.ToLower(r.ID)] = true
	}
	var out []string
	for _, r := range old.AppRoles {
		if !kept[strings.ToLower(r.ID)] {
			out = append(out, strings.ToLower(r.ID))
		}
	}
	return out
}

// MergeIssuerStatus merges a replica's report into the stored status of
// the same issuer (zero when there is none): the newest success and
// failure win, and the failure streak is the earliest failure either side
// saw after the merged last success. Any order of reports gives the same
// result.
func MergeIssuerStatus(old, in store.IssuerStatus) store.IssuerStatus {
	norm := func(s store.IssuerStatus) store.IssuerStatus {
		s.LastSuccess, s.LastFailure, s.FailingSince = Time(s.LastSuccess), Time(s.LastFailure), Time(s.FailingSince)
		return s
	}
	old, in = norm(old), norm(in)
	out := store.IssuerStatus{Issuer: in.Issuer}
	out.LastSuccess = latest(old.LastSuccess, in.LastSuccess)
	out.LastFailure = latest(old.LastFailure, in.LastFailure)
	out.LastError = old.LastError
	if in.LastFailure.After(old.LastFailure) || out.LastError == "" {
		out.LastError = in.LastError
	}
	if !out.LastFailure.After(out.LastSuccess) {
		out.LastError = ""
		return out
	}
	for _, c := range []time.Time{old.FailingSince, in.FailingSince, old.LastFailure, in.LastFailure} {
		if c.After(out.LastSuccess) && (out.FailingSince.IsZero() || c.Before(out.FailingSince)) {
			out.FailingSince = c
		}
	}
	return out
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TrustedIssuer returns a deep copy of t in canonical form.
func TrustedIssuer(t directory.TrustedIssuer) directory.TrustedIssuer {
	t.TenantID = directory.CanonicalID(t.TenantID)
	t.PushClientID = AuditID(t.PushClientID)
	t.Algorithms = nilIfEmpty(slices.Clone(t.Algorithms))
	t.KeysUpdatedAt = Time(t.KeysUpdatedAt)
	if len(t.RetiredKeys) == 0 {
		t.RetiredKeys = nil
	} else {
		rk := make([]directory.RetiredKey, len(t.RetiredKeys))
		for i, k := range t.RetiredKeys {
			rk[i] = directory.RetiredKey{Key: slices.Clone(k.Key), Until: Time(k.Until)}
		}
		t.RetiredKeys = rk
	}
	return t
}

// IssuerSet returns a deep copy of s in canonical form.
func IssuerSet(s directory.IssuerSet) directory.IssuerSet {
	s.TenantID = directory.CanonicalID(s.TenantID)
	s.Issuers = nilIfEmpty(slices.Clone(s.Issuers))
	return s
}

// UpdatedTrustedIssuer is UpdatedTenant for trusted issuers.
func UpdatedTrustedIssuer(old, t directory.TrustedIssuer, now time.Time) (directory.TrustedIssuer, error) {
	t = TrustedIssuer(t)
	if err := checkImmutable(same("tenantId", old.TenantID, t.TenantID), same("name", old.Name, t.Name)); err != nil {
		return t, err
	}
	t.Meta = NextMeta(old.Meta, now)
	return t, t.Validate()
}

// UpdatedIssuerSet is UpdatedTenant for issuer sets.
func UpdatedIssuerSet(old, s directory.IssuerSet, now time.Time) (directory.IssuerSet, error) {
	s = IssuerSet(s)
	if err := checkImmutable(same("tenantId", old.TenantID, s.TenantID), same("name", old.Name, s.Name)); err != nil {
		return s, err
	}
	s.Meta = NextMeta(old.Meta, now)
	return s, s.Validate()
}

// SortTrustedIssuers orders trusted issuers by tenant, then name.
func SortTrustedIssuers(ts []directory.TrustedIssuer) {
	slices.SortFunc(ts, func(a, b directory.TrustedIssuer) int {
		return cmpStrings(a.TenantID, b.TenantID, Key(a.Name), Key(b.Name))
	})
}

// SortIssuerSets orders issuer sets by tenant, then name.
func SortIssuerSets(ss []directory.IssuerSet) {
	slices.SortFunc(ss, func(a, b directory.IssuerSet) int {
		return cmpStrings(a.TenantID, b.TenantID, Key(a.Name), Key(b.Name))
	})
}

// ResourceGroup returns a deep copy of g in canonical form.
func ResourceGroup(g directory.ResourceGroup) directory.ResourceGroup {
	g.TenantID = directory.CanonicalID(g.TenantID)
	g.SubscriptionID = directory.CanonicalID(g.SubscriptionID)
	if len(g.Tags) == 0 {
		g.Tags = nil
	} else {
		g.Tags = maps.Clone(g.Tags)
	}
	return g
}

// UpdatedResourceGroup is UpdatedTenant for resource groups.
func UpdatedResourceGroup(old, g directory.ResourceGroup, now time.Time) (directory.ResourceGroup, error) {
	g = ResourceGroup(g)
	if err := checkImmutable(same("tenantId", old.TenantID, g.TenantID), same("subscriptionId", old.SubscriptionID, g.SubscriptionID), same("name", old.Name, g.Name)); err != nil {
		return g, err
	}
	g.Meta = NextMeta(old.Meta, now)
	return g, g.Validate()
}

// SortResourceGroups orders resource groups by tenant, subscription, then
// name.
func SortResourceGroups(gs []directory.ResourceGroup) {
	slices.SortFunc(gs, func(a, b directory.ResourceGroup) int {
		return cmpStrings(a.TenantID, b.TenantID, a.Key(), b.Key())
	})
}
