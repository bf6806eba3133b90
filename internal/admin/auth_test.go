package admin

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestAllowed(t *testing.T) {
	const a, b = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"
	tests := []struct {
		name     string
		roles    []string
		operator bool
		op       Operation
		want     error
	}{
		{"operator rw writes anything anywhere", []string{RoleReadWriteAll}, true, Operation{ScopeApp, true, b}, nil},
		{"operator rw spans tenants", []string{RoleReadWriteAll}, true, Operation{ScopeDirectory, true, ""}, nil},
		{"operator ro reads anywhere", []string{RoleReadAll}, true, Operation{ScopeAudit, false, b}, nil},
		{"operator ro cannot write", []string{RoleReadAll}, true, Operation{ScopeIdentity, true, a}, ErrForbidden},
		{"tenant rw writes own tenant", []string{RoleReadWriteAll}, false, Operation{ScopeApp, true, a}, nil},
		{"tenant rw cannot write another tenant", []string{RoleReadWriteAll}, false, Operation{ScopeApp, true, b}, ErrForbidden},
		{"tenant rw cannot span tenants", []string{RoleReadWriteAll}, false, Operation{ScopeTenant, false, ""}, ErrForbidden},
		{"tenant ro reads own tenant", []string{RoleReadAll}, false, Operation{ScopeAssignment, false, a}, nil},
		{"tenant ro cannot read another tenant", []string{RoleReadAll}, false, Operation{ScopeAssignment, false, b}, ErrForbidden},
		{"mic writes identities in own tenant", []string{RoleManagedIdentityContributor}, false, Operation{ScopeIdentity, true, a}, nil},
		{"mic writes identity credentials in own tenant", []string{RoleManagedIdentityContributor}, false, Operation{ScopeIdentCred, true, a}, nil},
		{"mic reads identities in own tenant", []string{RoleManagedIdentityContributor}, false, Operation{ScopeIdentity, false, a}, nil},
		{"mic in another tenant", []string{RoleManagedIdentityContributor}, false, Operation{ScopeIdentity, true, b}, ErrForbidden},
		{"mic in the operator tenant is still tenant-scoped", []string{RoleManagedIdentityContributor}, true, Operation{ScopeIdentity, true, b}, ErrForbidden},
		{"mic spanning tenants", []string{RoleManagedIdentityContributor}, false, Operation{ScopeIdentity, false, ""}, ErrForbidden},
		{"mic on applications", []string{RoleManagedIdentityContributor}, false, Operation{ScopeApp, false, a}, ErrForbidden},
		{"mic on application credentials", []string{RoleManagedIdentityContributor}, false, Operation{ScopeAppCred, true, a}, ErrForbidden},
		{"mic on assignments", []string{RoleManagedIdentityContributor}, false, Operation{ScopeAssignment, true, a}, ErrForbidden},
		{"no roles", nil, true, Operation{ScopeTenant, false, ""}, ErrForbidden},
		{"unknown role", []string{"Data.Read"}, true, Operation{ScopeTenant, false, ""}, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Allowed(tt.roles, a, tt.operator, tt.op)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Allowed = %v, want %v", err, tt.want)
			}
		})
	}
}

type fakeAddr string

func (f fakeAddr) Network() string { return "tcp" }
func (f fakeAddr) String() string  { return string(f) }

func TestLoopbackMode(t *testing.T) {
	auth := &TokenAuthorizer{AllowLoopback: true}
	tests := []struct {
		name, remote string
		local        net.Addr
		want         error
	}{
		{"both loopback v4", "127.0.0.1:5555", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}, nil},
		{"both loopback v6", "[::1]:5555", &net.TCPAddr{IP: net.IPv6loopback, Port: 8443}, nil},
		{"remote not loopback", "192.0.2.7:5555", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}, ErrUnauthenticated},
		{"listener not loopback", "127.0.0.1:5555", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8443}, ErrUnauthenticated},
		{"no local address", "127.0.0.1:5555", nil, ErrUnauthenticated},
		{"odd local address type", "127.0.0.1:5555", fakeAddr("127.0.0.1:8443"), nil},
		{"garbage remote", "nonsense", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/admin/tenants", nil)
			r.RemoteAddr = tt.remote
			if tt.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local))
			}
			_, err := auth.Authorize(r, Operation{Scope: ScopeTenant, Write: true})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
		})
	}
	// Without AllowLoopback, loopback is not enough.
	r := httptest.NewRequest("GET", "/admin/tenants", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}))
	if _, err := (&TokenAuthorizer{}).Authorize(r, Operation{Scope: ScopeTenant}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("loopback without AllowLoopback: %v", err)
	}
}

func TestKeySetVerifier(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const tid = "aaaaaaaa-0000-0000-0000-000000000000"
	sign := func(k *rsa.PrivateKey, kid string, alg jose.SignatureAlgorithm, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v := &KeySetVerifier{
		Keys: func(context.Context) (jose.JSONWebKeySet, error) {
			return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}, nil
		},
		Issuer: Issuers("https://wif.example", false),
		Now:    func() time.Time { return now },
	}
	good := map[string]any{"iss": "https://wif.example/" + tid + "/v2.0", "aud": AdminResource, "tid": tid, "roles": []string{RoleReadAll},
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name, token, wantErr string
	}{
		{"good", sign(key, "k1", jose.RS256, good), ""},
		{"v1 issuer", sign(key, "k1", jose.RS256, with("iss", "https://wif.example/"+tid+"/")), ""},
		{"expired", sign(key, "k1", jose.RS256, with("exp", now.Add(-2*time.Minute).Unix())), "expired"},
		{"no exp", sign(key, "k1", jose.RS256, with("exp", 0)), "expired"},
		{"not yet valid", sign(key, "k1", jose.RS256, with("nbf", now.Add(time.Hour).Unix())), "not valid yet"},
		{"other issuer", sign(key, "k1", jose.RS256, with("iss", "https://evil.example/"+tid+"/v2.0")), "is not this token service's issuer"},
		{"issuer of another tenant", sign(key, "k1", jose.RS256, with("tid", "bbbbbbbb-0000-0000-0000-000000000000")), "is not this token service's issuer"},
		{"unknown kid", sign(key, "k2", jose.RS256, good), "unknown key"},
		{"wrong key", sign(other, "k1", jose.RS256, good), "signature does not verify"},
		{"PS256", sign(key, "k1", jose.PS256, good), "not a compact RS256 JWS"},
		{"garbage", "a.b.c", "not a compact RS256 JWS"},
		{"huge", strings.Repeat("a", 17<<10), "longer than 16 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token)
			if tt.wantErr == "" {
				if err != nil || c.TenantID != tid || c.Roles[0] != RoleReadAll {
					t.Fatalf("Verify = %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestMayGrant(t *testing.T) {
	const op, b = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"
	caller := func(tid string, roles ...string) Caller {
		return Caller{TenantID: tid, Operator: tid == op, Roles: roles, OperatorTenant: op}
	}
	tests := []struct {
		name   string
		caller Caller
		target Holding
		want   error
	}{
		{"loopback dev caller", Caller{Unrestricted: true}, Holding{TenantID: op, Roles: []string{RoleReadWriteAll}}, nil},
		{"operator admin gives anything", caller(op, RoleReadWriteAll), Holding{TenantID: op, Roles: []string{RoleReadWriteAll, RoleReadAll}}, nil},
		{"operator admin in another tenant", caller(op, RoleReadWriteAll), Holding{TenantID: b, Roles: []string{RoleManagedIdentityContributor}}, nil},
		{"contributor to operator admin", caller(op, RoleManagedIdentityContributor), Holding{TenantID: op, Roles: []string{RoleReadWriteAll}}, ErrForbidden},
		{"contributor to operator reader", caller(op, RoleManagedIdentityContributor), Holding{TenantID: op, Roles: []string{RoleReadAll}}, ErrForbidden},
		{"contributor to contributor", caller(op, RoleManagedIdentityContributor), Holding{TenantID: op, Roles: []string{RoleManagedIdentityContributor}}, nil},
		{"contributor to another tenant's contributor", caller(op, RoleManagedIdentityContributor), Holding{TenantID: b, Roles: []string{RoleManagedIdentityContributor}}, ErrForbidden},
		{"tenant admin to its own admin", caller(b, RoleReadWriteAll), Holding{TenantID: b, Roles: []string{RoleReadWriteAll}}, nil},
		{"tenant admin to the operator's admin", caller(b, RoleReadWriteAll), Holding{TenantID: op, Roles: []string{RoleReadWriteAll}}, ErrForbidden},
		{"tenant admin to the operator's reader", caller(b, RoleReadWriteAll), Holding{TenantID: op, Roles: []string{RoleReadAll}}, ErrForbidden},
		{"operator reader to tenant reader", caller(op, RoleReadAll), Holding{TenantID: b, Roles: []string{RoleReadAll}}, nil},
		{"operator reader to tenant contributor", caller(op, RoleReadAll), Holding{TenantID: b, Roles: []string{RoleManagedIdentityContributor}}, ErrForbidden},
		{"no admin role held", caller(op), Holding{TenantID: op, Roles: []string{"Data.Read"}}, nil},
		{"two roles, one missing", caller(op, RoleReadAll), Holding{TenantID: op, Roles: []string{RoleReadAll, RoleManagedIdentityContributor}}, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.target.Principal = `managed identity "x"`
			err := tt.caller.MayGrant(tt.target)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("MayGrant = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "missing permission") {
				t.Fatalf("refusal does not name the missing permission: %v", err)
			}
		})
	}
}
