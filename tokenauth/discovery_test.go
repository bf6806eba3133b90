package tokenauth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/testissuer"
	"github.com/wif-project/wif/tokenauth"
)

func TestDiscoveryKeys(t *testing.T) {
	iss := testissuer.Start(t)
	now := time.Now()
	clock := func() time.Time { return now }
	disc := tokenauth.NewDiscovery(tokenauth.DiscoveryOptions{HTTPClient: iss.Client, Now: clock})
	defer disc.Close()
	keys := disc.KeySet(iss.DiscoveryURL(tid))
	v, err := tokenauth.New(tokenauth.Config{
		KeySets:   []tokenauth.KeySet{keys},
		Issuers:   []string{"https://sts.windows.net/" + tid + "/"},
		Audiences: []string{aud},
		Now:       clock,
		CacheSize: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mint := func(kid string) string {
		return testissuer.Sign(t, "RS256", iss.Key, map[string]any{"kid": kid}, iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: now}))
	}
	if _, err := v.Validate(ctx, iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: now})); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	if got := iss.KeyRequests.Load(); got != 1 {
		t.Errorf("key fetches = %d, want 1", got)
	}
	// Unknown kids: at most one fetch per 5 minutes however many arrive.
	var e *tokenauth.Error
	unknown := func() {
		t.Helper()
		for i := 0; i < 5; i++ {
			if _, err := v.Validate(ctx, mint("rotated")); !errors.As(err, &e) || e.Kind != tokenauth.KindBadSignature {
				t.Fatalf("unknown kid: %v", err)
			}
		}
	}
	unknown()
	if got := iss.KeyRequests.Load(); got != 1 {
		t.Errorf("key fetches after unknown kids within 5 min of the first fetch = %d, want 1", got)
	}
	now = now.Add(5*time.Minute + time.Second)
	unknown()
	if got := iss.KeyRequests.Load(); got != 2 {
		t.Errorf("key fetches after the cooldown = %d, want 2 (one refetch for five unknown kids)", got)
	}
	// Issuer down: the cached keys still serve.
	iss.Down.Store(true)
	now = now.Add(2 * time.Hour)
	if _, err := v.Validate(ctx, iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: now})); err != nil {
		t.Fatalf("stale keys while the issuer is down: %v", err)
	}
	if err := keys.Ready(ctx); err != nil {
		t.Errorf("Ready while serving stale keys: %v", err)
	}
}

func TestDiscoveryUnavailable(t *testing.T) {
	iss := testissuer.Start(t)
	iss.Down.Store(true)
	disc := tokenauth.NewDiscovery(tokenauth.DiscoveryOptions{HTTPClient: iss.Client})
	defer disc.Close()
	keys := disc.KeySet(iss.DiscoveryURL(tid))
	v, err := tokenauth.New(tokenauth.Config{KeySets: []tokenauth.KeySet{keys}, Issuers: []string{"https://sts.windows.net/" + tid + "/"}, Audiences: []string{aud}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Validate(context.Background(), iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))
	var e *tokenauth.Error
	if !errors.As(err, &e) || e.Kind != tokenauth.KindKeysUnavailable {
		t.Fatalf("err = %v, want KindKeysUnavailable", err)
	}
	if keys.Ready(context.Background()) == nil {
		t.Error("Ready = nil with no keys ever fetched")
	}
}
