package sts_test

import (
	"context"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/trust"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestLastUseAndIssuerStatus: an exchange that matches a credential makes
// its last use, written to the store on the flush; a refused one does not;
// an issuer that stops answering is recorded as failing since its first
// failed fetch, and a recovery ends the streak.
func TestLastUseAndIssuerStatus(t *testing.T) {
	env := wiftest.Start(t)
	ctx := context.Background()
	mi := env.CreateManagedIdentity(t, "worker")
	used, err := env.Store.GetFederatedCredential(ctx, env.TenantID, mi.ClientID, "k8s-worker")
	if err != nil {
		t.Fatal(err)
	}
	unused := env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "unused-cred", env.Issuer.URL, wiftest.Subject("other"), directory.DefaultAudience)
	env.CreateResourceApp(t, "api://usage-test", 2)
	env.Changed(t)

	before := time.Now().Add(-time.Second)
	env.Token(t, mi.ClientID, "api://usage-test/.default")
	// A refusal (wrong subject) uses no credential.
	if r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("nobody"), directory.DefaultAudience, time.Hour), "api://usage-test/.default")); r.Status != 400 && r.Status != 401 {
		t.Fatalf("refusal: %d", r.Status)
	}
	if err := env.Server.STS.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := env.Store.CredentialUsage(ctx, env.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[used.ID].Before(before.Truncate(time.Second)) || got[used.ID].After(time.Now()) {
		t.Fatalf("usage = %v, want only %s (%s) at about now", got, used.Name, used.ID)
	}
	if _, ok := got[unused.ID]; ok {
		t.Fatal("the unused credential has a last use")
	}
	st, err := env.Store.IssuerStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := st[env.Issuer.URL]; s.LastSuccess.IsZero() || s.Failing() {
		t.Fatalf("issuer status after a good fetch: %+v", s)
	}

	// The issuer goes down; the next fetch (a refresh) fails.
	env.Issuer.SetDown(true)
	if err := env.Server.Trust.Refresh(ctx, trust.IssuerSource(env.Issuer.URL)); err == nil {
		t.Fatal("refresh of a down issuer succeeded")
	}
	if err := env.Server.STS.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = env.Store.IssuerStatuses(ctx)
	s := st[env.Issuer.URL]
	if !s.Failing() || s.LastError == "" || s.FailingSince.Before(s.LastSuccess) {
		t.Fatalf("issuer status while down: %+v", s)
	}
	env.Issuer.SetDown(false)
	if err := env.Server.Trust.Refresh(ctx, trust.IssuerSource(env.Issuer.URL)); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.STS.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = env.Store.IssuerStatuses(ctx)
	if s := st[env.Issuer.URL]; s.Failing() || s.LastError != "" {
		t.Fatalf("issuer status after recovery: %+v", s)
	}
}
