// Package store defines how wif persists its directory, signing keys and
// audit log: the Store interface, its sentinel errors, and (in
// storetest) one conformance suite every backend passes. Backends live in
// store/memory, store/sqlite and store/postgres.
//
// Rules every backend follows:
//   - ctx first on every method; honour its cancellation.
//   - Not found is ErrNotFound, a uniqueness clash is ErrAlreadyExists, a
//     failed If-Match is ErrConflict — always wrapped with context and
//     matched with errors.Is.
//   - Create and Update validate with the directory package's rules inside
//     the same transaction that writes, so a rule that spans objects (at most
//     20 credentials per parent, unique issuer+subject) cannot be raced.
//   - Update methods are compare-and-swap closures: the closure receives the
//     current value and returns the new one; it may run more than once and
//     must modify its argument rather than build a new value, so fields added
//     later are kept. Returning an error from the closure aborts the update
//     and returns that error.
//   - Times are stored and returned in UTC with at least microsecond
//     precision; the same instant comes back whatever zone went in.
//   - Every write to the directory (tenants, applications, identities,
//     credentials, assignments, trusted issuers, issuer sets) increases the directory revision, so readers
//     that keep the directory in memory can tell when to reload.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/wif-project/wif/internal/directory"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict is a failed precondition: the object changed since the
	// version the caller named (If-Match), or a delete found dependants.
	ErrConflict = errors.New("conflict")
)

// Store is wif's persistence. Implementations are safe for concurrent use.
type Store interface {
	DirectoryStore
	KeyStore
	AuditStore
	UsageStore
	// Close releases the store's resources.
	Close() error
}

// DirectoryStore persists the directory.
type DirectoryStore interface {
	CreateTenant(ctx context.Context, t directory.Tenant) (directory.Tenant, error)
	GetTenant(ctx context.Context, id string) (directory.Tenant, error)
	ListTenants(ctx context.Context) ([]directory.Tenant, error)
	UpdateTenant(ctx context.Context, id string, update func(*directory.Tenant) error) (directory.Tenant, error)
	// DeleteTenant removes a tenant and everything in it.
	DeleteTenant(ctx context.Context, id string, pre ...Precondition) error

	// CreateApplication fails with ErrAlreadyExists when the appId, object id
	// or service principal id is taken, or when an identifier URI is already
	// used by another application of the tenant.
	CreateApplication(ctx context.Context, a directory.Application) (directory.Application, error)
	GetApplication(ctx context.Context, tenantID, appID string) (directory.Application, error)
	ListApplications(ctx context.Context, tenantID string) ([]directory.Application, error)
	UpdateApplication(ctx context.Context, tenantID, appID string, update func(*directory.Application) error) (directory.Application, error)
	// DeleteApplication removes the application, its credentials and the
	// role assignments that name it as resource or principal.
	DeleteApplication(ctx context.Context, tenantID, appID string, pre ...Precondition) error

	// CreateManagedIdentity fails with ErrAlreadyExists when an identity of
	// that name exists in the resource group (names compare case-
	// insensitively, as ARM does) or the client or principal id is taken.
	CreateManagedIdentity(ctx context.Context, m directory.ManagedIdentity) (directory.ManagedIdentity, error)
	GetManagedIdentity(ctx context.Context, tenantID string, ref IdentityRef) (directory.ManagedIdentity, error)
	GetManagedIdentityByClientID(ctx context.Context, tenantID, clientID string) (directory.ManagedIdentity, error)
	// ListManagedIdentities lists a tenant's identities; empty fields of
	// filter match everything.
	ListManagedIdentities(ctx context.Context, tenantID string, filter IdentityFilter) ([]directory.ManagedIdentity, error)
	UpdateManagedIdentity(ctx context.Context, tenantID string, ref IdentityRef, update func(*directory.ManagedIdentity) error) (directory.ManagedIdentity, error)
	// DeleteManagedIdentity removes the identity, its credentials and its
	// role assignments.
	DeleteManagedIdentity(ctx context.Context, tenantID string, ref IdentityRef, pre ...Precondition) error

	// CreateFederatedCredential checks the parent exists (ErrNotFound if
	// not) and runs FederatedCredential.ValidateSet against its siblings.
	CreateFederatedCredential(ctx context.Context, f directory.FederatedCredential) (directory.FederatedCredential, error)
	GetFederatedCredential(ctx context.Context, tenantID, parentClientID, name string) (directory.FederatedCredential, error)
	ListFederatedCredentials(ctx context.Context, tenantID, parentClientID string) ([]directory.FederatedCredential, error)
	// UpdateFederatedCredential rejects a change of name, parent or id.
	UpdateFederatedCredential(ctx context.Context, tenantID, parentClientID, name string, update func(*directory.FederatedCredential) error) (directory.FederatedCredential, error)
	DeleteFederatedCredential(ctx context.Context, tenantID, parentClientID, name string, pre ...Precondition) error

	// CreateAppRoleAssignment validates the assignment against the resource
	// application (ErrNotFound if absent) and fails with ErrAlreadyExists
	// for a duplicate (principal, resource, role).
	CreateAppRoleAssignment(ctx context.Context, a directory.AppRoleAssignment) (directory.AppRoleAssignment, error)
	ListAppRoleAssignments(ctx context.Context, tenantID string, filter AssignmentFilter) ([]directory.AppRoleAssignment, error)
	DeleteAppRoleAssignment(ctx context.Context, tenantID, id string) error

	// CreateTrustedIssuer fails with ErrAlreadyExists when the tenant has a
	// trusted issuer of that name (case-insensitively) or for that issuer,
	// and with ErrNotFound when the tenant does not exist.
	CreateTrustedIssuer(ctx context.Context, t directory.TrustedIssuer) (directory.TrustedIssuer, error)
	GetTrustedIssuer(ctx context.Context, tenantID, name string) (directory.TrustedIssuer, error)
	ListTrustedIssuers(ctx context.Context, tenantID string) ([]directory.TrustedIssuer, error)
	// UpdateTrustedIssuer rejects a change of name; a change of issuer
	// that clashes with another object is ErrAlreadyExists.
	UpdateTrustedIssuer(ctx context.Context, tenantID, name string, update func(*directory.TrustedIssuer) error) (directory.TrustedIssuer, error)
	DeleteTrustedIssuer(ctx context.Context, tenantID, name string, pre ...Precondition) error

	// CreateIssuerSet fails with ErrAlreadyExists when the tenant has an
	// issuer set of that name.
	CreateIssuerSet(ctx context.Context, s directory.IssuerSet) (directory.IssuerSet, error)
	GetIssuerSet(ctx context.Context, tenantID, name string) (directory.IssuerSet, error)
	ListIssuerSets(ctx context.Context, tenantID string) ([]directory.IssuerSet, error)
	UpdateIssuerSet(ctx context.Context, tenantID, name string, update func(*directory.IssuerSet) error) (directory.IssuerSet, error)
	DeleteIssuerSet(ctx context.Context, tenantID, name string, pre ...Precondition) error

	// CreateResourceGroup fails with ErrAlreadyExists when the tenant has a
	// group of that name (case-insensitively) in that subscription, and
	// with ErrNotFound when the tenant does not exist. Resource groups do
	// not take part in token exchanges (nor in Snapshot): they are what
	// Resource Manager's surface answers for.
	CreateResourceGroup(ctx context.Context, g directory.ResourceGroup) (directory.ResourceGroup, error)
	GetResourceGroup(ctx context.Context, tenantID, subscriptionID, name string) (directory.ResourceGroup, error)
	ListResourceGroups(ctx context.Context, tenantID string) ([]directory.ResourceGroup, error)
	UpdateResourceGroup(ctx context.Context, tenantID, subscriptionID, name string, update func(*directory.ResourceGroup) error) (directory.ResourceGroup, error)
	DeleteResourceGroup(ctx context.Context, tenantID, subscriptionID, name string, pre ...Precondition) error

	// Snapshot reads the whole directory in one consistent read.
	Snapshot(ctx context.Context) (Snapshot, error)
	// Revision is the directory revision: it increases with every write to
	// the directory and never goes back.
	Revision(ctx context.Context) (int64, error)
}

// Precondition is a condition of a delete (an If-Match): it runs inside the
// deleting transaction with the object's current version, so no write can
// slip between the check and the delete; an error it returns aborts the
// delete and is returned as it is.
type Precondition func(version int64) error

// CheckPreconditions runs pre against version (for backends).
func CheckPreconditions(version int64, pre []Precondition) error {
	for _, p := range pre {
		if err := p(version); err != nil {
			return err
		}
	}
	return nil
}

// Change is one object a directory revision changed, as a ChangeLog
// records it.
type Change struct {
	Revision int64
	TenantID string
	// Kind is ChangeIdentity or ChangeIdentityDeleted (Key: its client
	// id, a delete taking its credentials and role assignments along) or
	// ChangeCredential (Key: its parent's client id); ChangeOther is any
	// other write.
	Kind string
	Key  string
}

// The kinds of Change.
const (
	ChangeIdentity        = "identity"
	ChangeIdentityDeleted = "identityDeleted"
	ChangeCredential      = "credential"
	ChangeOther           = "other"
)

// ChangeLog is implemented by stores that record what each revision
// changed, so that a reader can apply the changes since its revision
// instead of reading a whole Snapshot.
type ChangeLog interface {
	// ChangesSince returns the current revision and the changes of the
	// revisions after since up to it. complete is false when the reader
	// must reload instead: a revision changed something the log does not
	// describe (ChangeOther), or its entries were trimmed, or it is too
	// far behind.
	ChangesSince(ctx context.Context, since int64) (revision int64, changes []Change, complete bool, err error)
	// TrimChanges forgets all but the last keep changes (a bulk apply
	// logs thousands in one revision).
	TrimChanges(ctx context.Context, keep int64) error
}

// Batcher is implemented by stores that can run several directory writes
// in one transaction (one commit, one fsync): fn's context carries the
// transaction, and every write made with it joins it. When fn returns an
// error nothing it wrote is kept. wif apply writes in batches with it.
type Batcher interface {
	Batch(ctx context.Context, fn func(ctx context.Context) error) error
}

// IdentityRef names a managed identity the way ARM does.
type IdentityRef struct {
	SubscriptionID string
	ResourceGroup  string
	Name           string
}

// IdentityFilter narrows ListManagedIdentities.
type IdentityFilter struct {
	SubscriptionID string
	ResourceGroup  string
	// After, when its Name is set, starts the list after that identity in
	// the list's order (subscription, then resource group and name
	// case-insensitively): keyset paging, as cheap for the millionth page
	// as for the first.
	After IdentityRef
	// Limit is the most identities returned (0: all).
	Limit int
	// NamePrefix keeps the identities whose name starts with it,
	// case-insensitively ("": all).
	NamePrefix string
}

// AssignmentFilter narrows ListAppRoleAssignments; empty fields match all.
type AssignmentFilter struct {
	PrincipalID   string
	ResourceAppID string
}

// Snapshot is the whole directory at one revision.
type Snapshot struct {
	Revision           int64
	Tenants            []directory.Tenant
	Applications       []directory.Application
	ManagedIdentities  []directory.ManagedIdentity
	Credentials        []directory.FederatedCredential
	AppRoleAssignments []directory.AppRoleAssignment
	TrustedIssuers     []directory.TrustedIssuer
	IssuerSets         []directory.IssuerSet
}

// SigningKey is one of the token service's signing keys as stored.
type SigningKey struct {
	// ID is the key id (kid).
	ID        string
	Algorithm string
	// PrivateKey is the PKCS#8 DER private key, sealed with the key-
	// encryption key when KEKID is set.
	PrivateKey []byte
	// KEKID names the key-encryption key that sealed PrivateKey; empty
	// means PrivateKey is stored in the clear.
	KEKID string
	// Certificate is a DER self-signed certificate for the public key (x5c).
	Certificate []byte
	CreatedAt   time.Time
	// PublishAt: the key appears in the JWKS from then on.
	PublishAt time.Time
	// ActivateAt: the key signs from then on (after PublishAt).
	ActivateAt time.Time
	// RetireAt: the key stops signing.
	RetireAt time.Time
	// ExpireAt: the key leaves the JWKS (later than RetireAt by more than
	// the longest token lifetime).
	ExpireAt time.Time
	// RevokedAt, when set, is when an operator retired the key: it left
	// the JWKS then, whatever ExpireAt says, and tokens it signed are
	// refused.
	RevokedAt time.Time
}

// KeyStore persists signing keys. Writes to the keys are serialised across
// every process sharing the store (a PostgreSQL advisory lock, SQLite's
// write lock), so replicas that decide at once decide one after the other.
type KeyStore interface {
	// CreateSigningKey fails with ErrAlreadyExists for a known ID.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// CreateSigningKeyIf creates k unless check — run inside the creating
	// transaction, with every stored key, while other key writers wait —
	// returns an error, which is returned as it is. Replicas decide on a
	// new key with it, so concurrent starts converge on one.
	CreateSigningKeyIf(ctx context.Context, k SigningKey, check func(existing []SigningKey) error) error
	// UpdateSigningKey changes a stored key (its times, or its private key
	// sealed anew) in a compare-and-swap closure, under the same lock;
	// the ID cannot change. ErrNotFound when absent.
	UpdateSigningKey(ctx context.Context, id string, update func(*SigningKey) error) (SigningKey, error)
	// ListSigningKeys returns every stored key, oldest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// DeleteSigningKey removes a key; ErrNotFound if absent.
	DeleteSigningKey(ctx context.Context, id string) error
}

// Results of an exchange, as audited.
const (
	AuditSuccess = "success"
	AuditFailure = "failure"
)

// AuditAdminChange is the GrantType of a record of an admin change (a
// write through the admin API, or Resource Manager's or Graph's surface
// mapped onto it), not of an exchange: its Resource is the path written,
// ErrorCode the HTTP status, Reason the operation.
const AuditAdminChange = "admin"

// AuditRecord is one token exchange, as kept in the audit log. It holds no
// token and no assertion: only a hash of the assertion's jti.
type AuditRecord struct {
	// ID is assigned by the store when empty.
	ID             string
	Time           time.Time
	TenantID       string
	ClientID       string
	CredentialName string
	GrantType      string
	Resource       string
	Issuer         string
	Subject        string
	// Audience is the assertion's aud (each value clipped; empty when the
	// assertion could not be read): with Issuer and Subject, what a replay
	// against another directory needs (wif apply --dry-run --replay).
	Audience []string
	// JTIHash is the hex SHA-256 of the assertion's jti (empty if none).
	JTIHash       string
	Result        string
	ErrorCode     int
	Error         string
	CorrelationID string
	RemoteAddr    string
	// Reason is a refusal's one-line explanation, for admins.
	Reason string
	// Diagnosis is a refusal's structured explanation (JSON, at most a few
	// KiB), for admins: what each check found.
	Diagnosis string
	// Count is how many exchanges the record stands for: 1 (or 0, read as
	// 1) for one; more for repeated successes of one identity, credential,
	// subject and audience within one minute, aggregated into one record
	// whose Time is the minute's start.
	Count int
}

// AuditFilter narrows ListAudit. Zero fields match everything. Results come
// newest first; After is the opaque cursor NextCursor returned.
type AuditFilter struct {
	TenantID      string
	ClientID      string
	CorrelationID string
	Result        string
	Since         time.Time
	Until         time.Time
	Limit         int
	After         string
}

// AuditPage is a page of audit records.
type AuditPage struct {
	Records []AuditRecord
	// NextCursor is empty on the last page.
	NextCursor string
}

// CredentialUse says when a federated credential last matched an
// exchange.
type CredentialUse struct {
	// CredentialID is the credential's id (a credential deleted and made
	// again under the same name starts unused).
	CredentialID string
	LastUsed     time.Time
}

// IssuerStatus is how an external issuer has answered the token service's
// fetches of its discovery document and keys, merged over every replica.
type IssuerStatus struct {
	Issuer      string
	LastSuccess time.Time
	LastFailure time.Time
	// FailingSince is the first failure after LastSuccess (zero while the
	// last fetch succeeded).
	FailingSince time.Time
	// LastError is the newest failure's cause (clipped).
	LastError string
}

// Failing reports whether the issuer's fetches have failed since its last
// success.
func (s IssuerStatus) Failing() bool { return !s.FailingSince.IsZero() }

// UsageStore keeps when credentials last matched and how issuers answer.
// Writers batch (the token service flushes every few seconds); every
// update merges — a record older than the stored one changes nothing — so
// replicas may write in any order.
type UsageStore interface {
	// RecordUsage merges uses and issuer statuses in one transaction. A
	// use of a credential that no longer exists is ignored.
	RecordUsage(ctx context.Context, uses []CredentialUse, issuers []IssuerStatus) error
	// CredentialUsage returns the last use of each credential of a tenant
	// that has one, by credential id.
	CredentialUsage(ctx context.Context, tenantID string) (map[string]time.Time, error)
	// IssuerStatuses returns every issuer's status, by issuer.
	IssuerStatuses(ctx context.Context) (map[string]IssuerStatus, error)
}

// AuditStore persists the audit log.
type AuditStore interface {
	// AppendAudit writes records in one transaction. A record whose ID and
	// Time are those of a stored record (a spooled batch written again)
	// fails it with ErrAlreadyExists.
	AppendAudit(ctx context.Context, records []AuditRecord) error
	ListAudit(ctx context.Context, filter AuditFilter) (AuditPage, error)
	// PruneAudit deletes records older than before and says how many.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}
