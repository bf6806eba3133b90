package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// No privilege escalation through the admin API. The rule is the one
// Kubernetes RBAC states for bind and escalate: a caller may attach a
// credential to an identity, change or remove it, assign it a role, or
// change the roles it holds, only if the caller itself holds every admin
// permission that identity holds, before and after the change. So a
// ManagedIdentityContributor manages workload identities, never one that
// can administer the directory, and a tenant's directory admin never
// reaches the operator tenant's powers.
//
// "Admin permission" means the app roles of api://wif-admin that the
// authorizer honours (Allowed); what a role is worth is decided by Allowed
// itself, so the two can never disagree.

// Holding is what a principal holds on its tenant's admin applications.
type Holding struct {
	// Principal names the principal in messages, e.g. `managed identity "ci"`.
	Principal string
	// TenantID is the principal's tenant: its tokens carry this tid.
	TenantID string
	// Roles are the values of the enabled admin app roles it holds.
	Roles []string
}

// probeScopes are every scope an operation can have.
var probeScopes = []Scope{ScopeTenant, ScopeDirectory, ScopeApp, ScopeAppCred, ScopeIdentity, ScopeIdentCred, ScopeAssignment, ScopeAudit, ScopeKeys, ScopeIssuer, ScopeIssuerKeys}

// probeTenant stands for "a tenant that is neither the caller's nor the
// target's": Allowed treats every such tenant alike.
const probeTenant = "ffffffff-ffff-4fff-bfff-ffffffffffff"

// MayGrant reports whether c holds every admin permission that h's roles
// give: nil, or an error matching ErrForbidden that names the first role
// the caller lacks and what it allows.
func (c Caller) MayGrant(h Holding) error {
	if c.Unrestricted {
		return nil
	}
	targetOperator := c.OperatorTenant != "" && strings.EqualFold(h.TenantID, c.OperatorTenant)
	for _, role := range h.Roles {
		if !c.lacks(role, h.TenantID, targetOperator) {
			continue
		}
		where := "tenant " + h.TenantID
		if targetOperator {
			where = "the operator tenant (" + h.TenantID + ")"
		}
		have := "no admin role"
		if len(c.Roles) > 0 {
			have = strings.Join(c.Roles, ", ")
		}
		return fmt.Errorf("%w: %s holds the app role %s of %s in %s, and this token (%s in tenant %s) does not; missing permission: %s in %s. "+
			"A caller may add, change or remove an identity's credentials, role assignments or roles only if it holds every admin permission that identity holds",
			ErrForbidden, h.Principal, role, AdminResource, where, have, c.TenantID, role, where)
	}
	return nil
}

// lacks reports whether role, held in tenant, allows some operation that
// the caller may not perform.
func (c Caller) lacks(role, tenant string, targetOperator bool) bool {
	for _, scope := range probeScopes {
		for _, write := range []bool{false, true} {
			for _, tid := range []string{tenant, c.TenantID, probeTenant, ""} {
				op := Operation{Scope: scope, Write: write, TenantID: tid}
				if Allowed([]string{role}, tenant, targetOperator, op) != nil {
					continue
				}
				if Allowed(c.Roles, c.TenantID, c.Operator, op) != nil {
					return true
				}
			}
		}
	}
	return false
}

type callerKey struct{}

// callerFrom returns the caller the authorizer let through.
func callerFrom(r *http.Request) Caller {
	c, _ := r.Context().Value(callerKey{}).(Caller)
	return c
}

func withCaller(r *http.Request, c Caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// isAdminApp reports whether a is an admin resource: tokens for it are
// accepted by the admin API (TokenAuthorizer.audienceOK).
func isAdminApp(a directory.Application) bool {
	return slices.ContainsFunc(a.IdentifierURIs, func(u string) bool { return strings.EqualFold(u, AdminResource) })
}

// enabledRoleValue is the value of the enabled role id of a, if any.
func enabledRoleValue(a directory.Application, roleID string) (string, bool) {
	for _, r := range a.AppRoles {
		if strings.EqualFold(r.ID, roleID) && r.IsEnabled {
			return r.Value, true
		}
	}
	return "", false
}

// holding reads the admin roles principalID holds in tenant tid.
func (h *Handler) holding(ctx context.Context, tid, principalID, name string) (Holding, error) {
	out := Holding{Principal: name, TenantID: tid}
	apps, err := h.cfg.Store.ListApplications(ctx, tid)
	if err != nil {
		return out, err
	}
	admins := map[string]directory.Application{}
	for _, a := range apps {
		if isAdminApp(a) {
			admins[lower(a.AppID)] = a
		}
	}
	if len(admins) == 0 {
		return out, nil
	}
	gs, err := h.cfg.Store.ListAppRoleAssignments(ctx, tid, store.AssignmentFilter{PrincipalID: principalID})
	if err != nil {
		return out, err
	}
	for _, g := range gs {
		if a, ok := admins[lower(g.ResourceAppID)]; ok {
			if v, ok := enabledRoleValue(a, g.AppRoleID); ok && !slices.Contains(out.Roles, v) {
				out.Roles = append(out.Roles, v)
			}
		}
	}
	return out, nil
}

// mayChangePrincipal refuses a write to principalID (its credentials, its
// object, its role assignments) unless the caller holds every admin role
// the principal holds, plus extra (roles it would gain).
func (h *Handler) mayChangePrincipal(r *http.Request, tid, principalID, name string, extra ...string) error {
	c := callerFrom(r)
	if c.Unrestricted {
		return nil
	}
	held, err := h.holding(r.Context(), tid, principalID, name)
	if err != nil {
		return err
	}
	for _, v := range extra {
		if !slices.Contains(held.Roles, v) {
			held.Roles = append(held.Roles, v)
		}
	}
	return c.MayGrant(held)
}

// mayChangeAdminApp refuses an edit or removal of an application when it
// is (or becomes) an admin resource and some principal assigned to it holds
// — before or after — a role the caller does not hold. after is nil for a
// removal.
func (h *Handler) mayChangeAdminApp(r *http.Request, before directory.Application, after *directory.Application) error {
	c := callerFrom(r)
	if c.Unrestricted || (!isAdminApp(before) && (after == nil || !isAdminApp(*after))) {
		return nil
	}
	gs, err := h.cfg.Store.ListAppRoleAssignments(r.Context(), before.TenantID, store.AssignmentFilter{ResourceAppID: before.AppID})
	if err != nil {
		return err
	}
	by := map[string]*Holding{}
	var order []string
	for _, g := range gs {
		p := lower(g.PrincipalID)
		hd := by[p]
		if hd == nil {
			hd = &Holding{Principal: "principal " + g.PrincipalID, TenantID: before.TenantID}
			by[p] = hd
			order = append(order, p)
		}
		var vals []string
		if v, ok := enabledRoleValue(before, g.AppRoleID); ok && isAdminApp(before) {
			vals = append(vals, v)
		}
		if after != nil && isAdminApp(*after) {
			if v, ok := enabledRoleValue(*after, g.AppRoleID); ok {
				vals = append(vals, v)
			}
		}
		for _, v := range vals {
			if !slices.Contains(hd.Roles, v) {
				hd.Roles = append(hd.Roles, v)
			}
		}
	}
	for _, p := range order {
		if err := c.MayGrant(*by[p]); err != nil {
			return err
		}
	}
	return nil
}

// assignedRoleValue is the admin role value an assignment would give
// ("" when the resource is not an admin application or the role is
// disabled or unknown).
func assignedRoleValue(apps []directory.Application, g directory.AppRoleAssignment) string {
	for _, a := range apps {
		if strings.EqualFold(a.AppID, g.ResourceAppID) && isAdminApp(a) {
			v, _ := enabledRoleValue(a, g.AppRoleID)
			return v
		}
	}
	return ""
}

// principalName describes a principal id for messages.
func principalName(apps []directory.Application, mis []directory.ManagedIdentity, principalID string) string {
	for _, m := range mis {
		if strings.EqualFold(m.PrincipalID, principalID) {
			return identityName(m)
		}
	}
	for _, a := range apps {
		if strings.EqualFold(a.ServicePrincipalID, principalID) {
			return appName(a)
		}
	}
	return "principal " + principalID
}
