package directory

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of the directory, from Entra's documented limits where Entra has
// one, else ours.
const (
	MaxCredentialsPerParent = 20
	MaxCredentialFieldLen   = 600
	MinCredentialNameLen    = 3
	MaxCredentialNameLen    = 120
	MaxDisplayNameLen       = 256
	MaxIdentifierURILen     = 255
	MaxIdentifierURIs       = 50
	MaxAppRoles             = 100
	MaxAppRoleValueLen      = 249
	MinIdentityNameLen      = 3
	MaxIdentityNameLen      = 128
	MaxResourceGroupLen     = 90
)

// ValidationError reports one broken rule: the field (as the API names it),
// the rule, and the value that broke it.
type ValidationError struct {
	Field string
	Rule  string
	Value string
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Rule)
	}
	return fmt.Sprintf("%s: %s (got %q)", e.Field, e.Rule, truncate(e.Value, 80))
}

// ValidationErrors is every rule an object breaks, reported together.
type ValidationErrors []*ValidationError

func (es ValidationErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each ValidationError.
func (es ValidationErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// ErrInvalid is matched (errors.Is) by every validation failure.
var ErrInvalid = errors.New("invalid directory object")

// Is makes errors.Is(err, ErrInvalid) true for validation failures.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Is makes errors.Is(err, ErrInvalid) true for validation failures.
func (es ValidationErrors) Is(target error) bool { return target == ErrInvalid }

type checker struct{ errs ValidationErrors }

func (c *checker) fail(field, value, rule string, args ...any) {
	c.errs = append(c.errs, &ValidationError{Field: field, Rule: fmt.Sprintf(rule, args...), Value: value})
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

func (c *checker) guid(field, v string) {
	if v == "" {
		c.fail(field, v, "is required and must be a GUID")
		return
	}
	if !IsGUID(v) {
		c.fail(field, v, "must be a GUID such as 00000000-0000-0000-0000-000000000000")
	}
}

func (c *checker) maxLen(field, v string, n int) {
	if utf8.RuneCountInString(v) > n {
		c.fail(field, v, "must be at most %d characters (has %d)", n, utf8.RuneCountInString(v))
	}
}

func (c *checker) required(field, v string) bool {
	if strings.TrimSpace(v) == "" {
		c.fail(field, v, "is required")
		return false
	}
	return true
}

// IsGUID reports whether s is a GUID in its canonical 8-4-4-4-12 form.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// NewID returns a new random GUID.
func NewID() string { return uuid.NewString() }

// CanonicalID lower-cases a GUID so that ids given in any letter case name
// the same object.
func CanonicalID(s string) string { return strings.ToLower(s) }

// Validate checks a tenant.
func (t Tenant) Validate() error {
	var c checker
	c.guid("id", t.ID)
	if c.required("displayName", t.DisplayName) {
		c.maxLen("displayName", t.DisplayName, MaxDisplayNameLen)
	}
	return c.err()
}

var appRoleValueRE = regexp.MustCompile(`^[!-~]+$`) // printable ASCII, no spaces

// Validate checks an application and its app roles.
func (a Application) Validate() error {
	var c checker
	c.guid("tenantId", a.TenantID)
	c.guid("appId", a.AppID)
	c.guid("id", a.ObjectID)
	c.guid("servicePrincipalId", a.ServicePrincipalID)
	if c.required("displayName", a.DisplayName) {
		c.maxLen("displayName", a.DisplayName, MaxDisplayNameLen)
	}
	if len(a.IdentifierURIs) > MaxIdentifierURIs {
		c.fail("identifierUris", "", "must hold at most %d URIs (has %d)", MaxIdentifierURIs, len(a.IdentifierURIs))
	}
	seenURI := map[string]bool{}
	for i, u := range a.IdentifierURIs {
		field := fmt.Sprintf("identifierUris[%d]", i)
		if err := checkIdentifierURI(u); err != "" {
			c.fail(field, u, "%s", err)
		}
		k := strings.ToLower(u)
		if seenURI[k] {
			c.fail(field, u, "is listed twice")
		}
		seenURI[k] = true
	}
	if v := a.RequestedAccessTokenVersion; v != 0 && v != 1 && v != 2 {
		c.fail("requestedAccessTokenVersion", fmt.Sprint(v), "must be 1 or 2 (or unset, which means 1)")
	}
	if len(a.AppRoles) > MaxAppRoles {
		c.fail("appRoles", "", "must hold at most %d roles (has %d)", MaxAppRoles, len(a.AppRoles))
	}
	seenID, seenValue := map[string]bool{}, map[string]bool{}
	for i, r := range a.AppRoles {
		field := fmt.Sprintf("appRoles[%d]", i)
		c.guid(field+".id", r.ID)
		if seenID[strings.ToLower(r.ID)] {
			c.fail(field+".id", r.ID, "is used by another app role of this application")
		}
		seenID[strings.ToLower(r.ID)] = true
		if c.required(field+".value", r.Value) {
			c.maxLen(field+".value", r.Value, MaxAppRoleValueLen)
			if !appRoleValueRE.MatchString(r.Value) {
				c.fail(field+".value", r.Value, "must be printable ASCII with no spaces, as it appears in the roles claim")
			}
			if seenValue[r.Value] {
				c.fail(field+".value", r.Value, "is used by another app role of this application")
			}
			seenValue[r.Value] = true
		}
		c.maxLen(field+".displayName", r.DisplayName, MaxDisplayNameLen)
		if len(r.AllowedMemberTypes) == 0 {
			c.fail(field+".allowedMemberTypes", "", "must list at least one of %q, %q", MemberTypeApplication, MemberTypeUser)
		}
		for j, m := range r.AllowedMemberTypes {
			if m != MemberTypeApplication && m != MemberTypeUser {
				c.fail(fmt.Sprintf("%s.allowedMemberTypes[%d]", field, j), m, "must be %q or %q", MemberTypeApplication, MemberTypeUser)
			}
		}
	}
	return c.err()
}

func checkIdentifierURI(u string) string {
	if u == "" {
		return "must not be empty"
	}
	if strings.TrimSpace(u) != u {
		return "must not begin or end with whitespace"
	}
	if utf8.RuneCountInString(u) > MaxIdentifierURILen {
		return fmt.Sprintf("must be at most %d characters", MaxIdentifierURILen)
	}
	if strings.ContainsAny(u, "*#? \t\r\n") {
		return "must not contain wildcards, a query, a fragment or whitespace"
	}
	if strings.HasSuffix(u, "/.default") {
		return "must not end with /.default (that suffix belongs to scopes, not to the identifier)"
	}
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" {
		return "must be an absolute URI such as api://my-api or https://contoso.example/api"
	}
	switch p.Scheme {
	case "api", "https", "http", "urn", "ms-appx":
	default:
		return "must use the scheme api, https, http, urn or ms-appx"
	}
	return ""
}

var (
	identityNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	resourceGroupRE = regexp.MustCompile(`^[-\w._()]+$`)
	credNameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
)

// Validate checks a managed identity.
func (m ManagedIdentity) Validate() error {
	var c checker
	c.guid("tenantId", m.TenantID)
	c.guid("subscriptionId", m.SubscriptionID)
	c.guid("clientId", m.ClientID)
	c.guid("principalId", m.PrincipalID)
	if n := utf8.RuneCountInString(m.Name); n < MinIdentityNameLen || n > MaxIdentityNameLen {
		c.fail("name", m.Name, "must be %d to %d characters (has %d)", MinIdentityNameLen, MaxIdentityNameLen, n)
	} else if !identityNameRE.MatchString(m.Name) {
		c.fail("name", m.Name, "may hold only letters, digits, '-' and '_', and must start with a letter or digit")
	}
	c.resourceGroup("resourceGroup", m.ResourceGroup)
	c.maxLen("location", m.Location, MaxLocationLen)
	c.tags(m.Tags)
	return c.err()
}

// resourceGroup checks a resource group name as ARM does.
func (c *checker) resourceGroup(field, v string) {
	if n := len(v); n == 0 || n > MaxResourceGroupLen {
		c.fail(field, v, "must be 1 to %d characters (has %d)", MaxResourceGroupLen, n)
	} else if !resourceGroupRE.MatchString(v) || strings.HasSuffix(v, ".") {
		c.fail(field, v, "may hold only letters, digits, '_', '-', '.', '(' and ')', and must not end with '.'")
	}
}

// tags checks ARM tags: at most MaxTags, names up to 512 characters,
// values up to 256.
func (c *checker) tags(tags map[string]string) {
	if len(tags) > MaxTags {
		c.fail("tags", "", "may hold at most %d tags, as ARM's (has %d)", MaxTags, len(tags))
	}
	for k, v := range tags {
		c.maxLen("tags."+k, v, 256)
		c.maxLen("tags", k, 512)
	}
}

// Validate checks a federated identity credential on its own; ValidateSet
// checks it against its siblings.
func (f FederatedCredential) Validate() error {
	var c checker
	c.guid("tenantId", f.TenantID)
	c.guid("id", f.ID)
	switch f.ParentKind {
	case ParentManagedIdentity, ParentApplication:
	default:
		c.fail("parentKind", string(f.ParentKind), "must be %q or %q", ParentManagedIdentity, ParentApplication)
	}
	c.guid("parentClientId", f.ParentClientID)
	if n := utf8.RuneCountInString(f.Name); n < MinCredentialNameLen || n > MaxCredentialNameLen {
		c.fail("name", f.Name, "must be %d to %d characters (has %d)", MinCredentialNameLen, MaxCredentialNameLen, n)
	} else if !credNameRE.MatchString(f.Name) {
		c.fail("name", f.Name, "may hold only letters, digits, '-' and '_', and must start with a letter or digit")
	}
	if set, ok := IssuerSetName(f.Issuer); ok {
		before := len(c.errs)
		c.objectName("issuer", set)
		for _, e := range c.errs[before:] {
			e.Rule = "names an issuer set (" + IssuerSetPrefix + "NAME) whose name " + e.Rule
		}
	} else {
		c.issuer(f.Issuer)
	}
	switch {
	case f.ClaimsMatchingExpression != nil && f.Subject != "":
		c.fail("subject", f.Subject, "must be empty when claimsMatchingExpression is set (a credential matches by one or the other)")
	case f.ClaimsMatchingExpression != nil:
		e := f.ClaimsMatchingExpression
		if e.LanguageVersion != 1 {
			c.fail("claimsMatchingExpression.languageVersion", fmt.Sprint(e.LanguageVersion), "must be 1")
		}
		c.maxLen("claimsMatchingExpression.value", e.Value, MaxCredentialFieldLen)
		if _, err := ParseClaimsExpression(e.Value); err != nil {
			c.fail("claimsMatchingExpression.value", e.Value, "%v", err)
		}
	default:
		if c.required("subject", f.Subject) {
			c.maxLen("subject", f.Subject, MaxCredentialFieldLen)
			if strings.TrimSpace(f.Subject) != f.Subject {
				c.fail("subject", f.Subject, "must not begin or end with whitespace (it is compared exactly)")
			}
		}
	}
	if len(f.Audiences) != 1 {
		c.fail("audiences", strings.Join(f.Audiences, ","), "must hold exactly one audience (has %d); the usual one is %q", len(f.Audiences), DefaultAudience)
	} else {
		a := f.Audiences[0]
		if c.required("audiences[0]", a) {
			c.maxLen("audiences[0]", a, MaxCredentialFieldLen)
			if strings.TrimSpace(a) != a {
				c.fail("audiences[0]", a, "must not begin or end with whitespace (it is compared exactly)")
			}
		}
	}
	c.maxLen("description", f.Description, MaxCredentialFieldLen)
	return c.err()
}

func (c *checker) issuer(iss string) {
	if !c.required("issuer", iss) {
		return
	}
	c.maxLen("issuer", iss, MaxCredentialFieldLen)
	if strings.TrimSpace(iss) != iss {
		c.fail("issuer", iss, "must not begin or end with whitespace (it is compared exactly with the token's iss)")
		return
	}
	u, err := url.Parse(iss)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		c.fail("issuer", iss, "must be an https URL, exactly as the issuer's tokens carry it in iss (for example https://oidc.example.com/abc/)")
		return
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		c.fail("issuer", iss, "must not have a query, a fragment or user info")
	}
}

// ValidateSet checks a credential against the other credentials of the same
// parent (siblings excludes the credential itself): names are unique,
// issuer+subject pairs are unique, and a parent holds at most
// MaxCredentialsPerParent credentials.
func (f FederatedCredential) ValidateSet(siblings []FederatedCredential) error {
	return f.ValidateSetLimit(siblings, MaxCredentialsPerParent)
}

// ValidateSetLimit is ValidateSet with limit credentials per parent (0 or
// less: MaxCredentialsPerParent, Entra's).
func (f FederatedCredential) ValidateSetLimit(siblings []FederatedCredential, limit int) error {
	var c checker
	if limit <= 0 {
		limit = MaxCredentialsPerParent
	}
	if len(siblings)+1 > limit {
		c.fail("name", f.Name, "cannot be added: the %s already has %d federated credentials, the most allowed (wif serve --max-credentials-per-identity; Entra allows %d)", f.ParentKind, limit, MaxCredentialsPerParent)
		return fmt.Errorf("%w: %w", ErrCredentialLimit, c.err())
	}
	for _, s := range siblings {
		if strings.EqualFold(s.Name, f.Name) {
			c.fail("name", f.Name, "is already used by another federated credential of this %s", f.ParentKind)
		}
		if s.Issuer == f.Issuer && s.Subject == f.Subject && f.ClaimsMatchingExpression == nil && s.ClaimsMatchingExpression == nil {
			c.fail("subject", f.Subject, "with this issuer is already trusted by federated credential %q of this %s (issuer and subject must be unique per parent)", s.Name, f.ParentKind)
		}
	}
	return c.err()
}

// Validate checks an assignment against the resource application it names.
func (a AppRoleAssignment) Validate(resource Application) error {
	var c checker
	c.guid("tenantId", a.TenantID)
	c.guid("id", a.ID)
	c.guid("principalId", a.PrincipalID)
	c.guid("resourceAppId", a.ResourceAppID)
	c.guid("appRoleId", a.AppRoleID)
	if c.err() != nil {
		return c.err()
	}
	var role *AppRole
	for i := range resource.AppRoles {
		if strings.EqualFold(resource.AppRoles[i].ID, a.AppRoleID) {
			role = &resource.AppRoles[i]
		}
	}
	switch {
	case role == nil:
		c.fail("appRoleId", a.AppRoleID, "is not an app role of application %q (%s)", resource.DisplayName, resource.AppID)
	case !role.IsEnabled:
		c.fail("appRoleId", a.AppRoleID, "names app role %q, which is disabled", role.Value)
	default:
		ok := false
		for _, m := range role.AllowedMemberTypes {
			ok = ok || m == MemberTypeApplication
		}
		if !ok {
			c.fail("appRoleId", a.AppRoleID, "names app role %q, which cannot be assigned to applications or identities (allowedMemberTypes lacks %q)", role.Value, MemberTypeApplication)
		}
	}
	return c.err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
