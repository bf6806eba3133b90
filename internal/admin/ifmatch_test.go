package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
)

// racingStore lets another writer's update land just before each delete,
// that is after the handler read the object: the interleaving an If-Match
// compared outside the deleting transaction loses.
type racingStore struct {
	*memory.Store
	race func()
}

func (s *racingStore) DeleteManagedIdentity(ctx context.Context, tid string, ref store.IdentityRef, pre ...store.Precondition) error {
	s.race()
	return s.Store.DeleteManagedIdentity(ctx, tid, ref, pre...)
}

func (s *racingStore) DeleteFederatedCredential(ctx context.Context, tid, parent, name string, pre ...store.Precondition) error {
	s.race()
	return s.Store.DeleteFederatedCredential(ctx, tid, parent, name, pre...)
}

// TestDeleteIfMatchRacingAnUpdate: a DELETE whose If-Match names the
// version the caller read must not delete a newer version written between
// the handler's read and the delete.
func TestDeleteIfMatchRacingAnUpdate(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	st := &racingStore{Store: mem, race: func() {}}
	if _, err := mem.CreateTenant(ctx, directory.Tenant{ID: fuzzTenant, DisplayName: "x"}); err != nil {
		t.Fatal(err)
	}
	ref := store.IdentityRef{SubscriptionID: "00000000-0000-0000-0000-000000000000", ResourceGroup: "rg", Name: "raced"}
	m, err := mem.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: fuzzTenant, SubscriptionID: ref.SubscriptionID,
		ResourceGroup: ref.ResourceGroup, Name: ref.Name, ClientID: directory.NewID(), PrincipalID: directory.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := mem.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: fuzzTenant, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: m.ClientID, ID: directory.NewID(), Name: "cred", Issuer: "https://issuer.example", Subject: "s", Audiences: []string{directory.DefaultAudience}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Store: st, Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	idPath := IdentityPath(fuzzTenant, ref.SubscriptionID, ref.ResourceGroup, ref.Name)
	for _, tc := range []struct {
		name, path, etag string
		race             func()
		still            func() error
	}{
		{"credential", idPath + "/federatedIdentityCredentials/cred", ETag(f.Version), func() {
			_, _ = mem.UpdateFederatedCredential(ctx, fuzzTenant, m.ClientID, "cred", func(f *directory.FederatedCredential) error { f.Subject = "newer"; return nil })
		}, func() error { _, err := mem.GetFederatedCredential(ctx, fuzzTenant, m.ClientID, "cred"); return err }},
		{"identity", idPath, ETag(m.Version), func() {
			_, _ = mem.UpdateManagedIdentity(ctx, fuzzTenant, ref, func(m *directory.ManagedIdentity) error { m.Location = "newer"; return nil })
		}, func() error { _, err := mem.GetManagedIdentity(ctx, fuzzTenant, ref); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st.race = tc.race
			r := httptest.NewRequest("DELETE", tc.path, nil)
			r.Header.Set("If-Match", tc.etag)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusPreconditionFailed {
				t.Fatalf("DELETE with the ETag read before a racing update: %d %s, want 412", w.Code, w.Body)
			}
			if err := tc.still(); err != nil {
				t.Fatalf("the newer version was deleted: %v", err)
			}
		})
	}
}
