package sts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestIssuerFetchCannotReachMetadata: a tenant admin's credential naming
// the cloud metadata address as issuer does not make the token service
// fetch from it: the exchange is refused with Entra's generic external
// OIDC error, and the audit record says which rule refused the address.
func TestIssuerFetchCannotReachMetadata(t *testing.T) {
	env := wiftest.Start(t, wiftest.WithPrivateIssuersRefused())
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 2)
	const evil = "https://169.254.169.254/latest/meta-data"
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "metadata", evil, "s", directory.DefaultAudience)
	env.Changed(t)
	assertion := wiftest.SignRS256(t, env.Issuer.Key(), map[string]any{"iss": evil, "sub": "s", "aud": directory.DefaultAudience,
		"iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}, nil)
	r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, assertion, "api://provider-api/.default"))
	desc, _ := r.Body["error_description"].(string)
	if r.Status != 400 && r.Status != 401 || strings.Contains(desc, "169.254") && strings.Contains(desc, "link-local") {
		t.Fatalf("exchange: %d %s", r.Status, r.Raw)
	}
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	pg, err := env.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: env.TenantID})
	if err != nil || len(pg.Records) != 1 {
		t.Fatalf("audit: %v %d", err, len(pg.Records))
	}
	if d := string(pg.Records[0].Diagnosis); !strings.Contains(d, "169.254.169.254:443 is a link-local address") || !strings.Contains(d, "--allow-private-issuers") {
		t.Fatalf("the audit record does not say why: %s", d)
	}
}
