package sts_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/sqlite"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestRestartKeepsState runs the token service on a SQLite file, stops it,
// starts it again on the same file, and checks that identities,
// credentials and signing keys survived: a token issued before the restart
// still verifies against the JWKS served after it.
func TestRestartKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	tenant := directory.NewID()
	ctx := context.Background()

	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var before string
	var mi directory.ManagedIdentity
	var kidBefore string
	t.Run("first run", func(t *testing.T) {
		env := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithTenantID(tenant))
		mi = env.CreateManagedIdentity(t, "durable")
		app := env.CreateResourceApp(t, "api://durable", 2, "Data.Read")
		env.Assign(t, mi.PrincipalID, app.AppID, "Data.Read")
		before = env.Token(t, mi.ClientID, "api://durable/.default")
		h, _ := verify(t, env, before)
		kidBefore = h.KeyID
	}) // the service stops when the subtest ends
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	env := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithTenantID(tenant))
	got, err := st.GetManagedIdentityByClientID(ctx, tenant, mi.ClientID)
	if err != nil {
		t.Fatalf("identity lost across restart: %v", err)
	}
	if got.PrincipalID != mi.PrincipalID || got.Name != "durable" {
		t.Fatalf("identity changed across restart: %+v, was %+v", got, mi)
	}
	creds, err := st.ListFederatedCredentials(ctx, tenant, mi.ClientID)
	if err != nil || len(creds) != 1 || creds[0].Subject != wiftest.Subject("durable") {
		t.Fatalf("credentials after restart: %v %+v", err, creds)
	}
	h, claims := verify(t, env, before)
	if h.KeyID != kidBefore || claims["azp"] != mi.ClientID {
		t.Fatalf("token from before the restart: kid %s (was %s), claims %v", h.KeyID, kidBefore, claims)
	}
	// The identity works after the restart too (trusting this run's issuer).
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "second-run", env.Issuer.URL, wiftest.Subject("durable2"), directory.DefaultAudience)
	after := env.Token(t, mi.ClientID, "api://durable/.default")
	if h2, _ := verify(t, env, after); h2.KeyID != kidBefore {
		t.Errorf("signing key changed across restart: %s → %s", kidBefore, h2.KeyID)
	}
}
