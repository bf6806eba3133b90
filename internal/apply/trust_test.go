package apply

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/memory"
)

func trustDoc(t *testing.T, extra string) *Document {
	t.Helper()
	jwks, err := os.ReadFile("../cli/testdata/cluster-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	indented := strings.ReplaceAll(strings.TrimSpace(string(jwks)), "\n", "\n      ")
	return mustParse(t, `tenants:
- id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  displayName: Contoso
  trustedIssuers:
  - name: air-gapped
    issuer: https://kubernetes.default.svc.cluster.local
    jwks:
      `+indented+`
  - name: spire
    issuer: https://oidc.spire.example.org
    algorithms: [ES256]
    maxTokenLifetimeSeconds: 3600
  - name: aks-east
    issuer: https://oidc.east.example/abc/
    keySource: pushed
    pushClientId: 5b2ee5f8-0f59-4a2b-9c47-3a2d1e5f7c11
`+extra+`  issuerSets:
  - name: prod
    issuers: [https://oidc.east.example/abc/, https://kubernetes.default.svc.cluster.local]
  managedIdentities:
  - name: payments
    resourceGroup: rg
    federatedCredentials:
    - name: all-clusters
      issuer: urn:wif:issuer-set:prod
      subject: system:serviceaccount:payments:api
`)
}

// Trusted issuers and issuer sets live in directory documents like every
// other object: created, left alone when unchanged, exported back to the
// same document, pruned; a pushed issuer's keys stay its agent's.
func TestApplyTrustObjects(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	res, err := Apply(ctx, s, trustDoc(t, ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The tenant, 3 trusted issuers, 1 issuer set, the identity, its credential.
	if n := res.Plan.Count(Create); n != 7 || res.Applied != 7 {
		t.Fatalf("first apply: %d creates, %d applied:\n%s", n, res.Applied, res.Plan)
	}
	snap, _ := s.Snapshot(ctx)
	if len(snap.TrustedIssuers) != 3 || len(snap.IssuerSets) != 1 {
		t.Fatalf("applied %d trusted issuers, %d issuer sets", len(snap.TrustedIssuers), len(snap.IssuerSets))
	}
	for _, ti := range snap.TrustedIssuers {
		if ti.Name == "air-gapped" && (ti.KeySource != directory.KeySourceJWKS || !strings.Contains(ti.JWKS, `"kid":"cluster-key-1"`) || ti.KeysUpdatedAt.IsZero()) {
			t.Errorf("air-gapped: %+v", ti)
		}
	}
	// The agent pushes; re-applying the document keeps its keys.
	if _, err := s.UpdateTrustedIssuer(ctx, snap.Tenants[0].ID, "aks-east", func(x *directory.TrustedIssuer) error {
		x.JWKS = snap.TrustedIssuers[0].JWKS
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err = Apply(ctx, s, trustDoc(t, ""), Options{})
	if err != nil || !res.Plan.Empty() {
		t.Fatalf("second apply: %v\n%s", err, res.Plan)
	}
	after, _ := s.GetTrustedIssuer(ctx, snap.Tenants[0].ID, "aks-east")
	if after.JWKS == "" {
		t.Error("re-applying the document dropped the pushed keys")
	}
	// Export gives back a document that applies as a no-op, without the
	// pushed keys.
	doc, err := Export(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range doc.Tenants[0].TrustedIssuers {
		if ti.Name == "aks-east" && len(ti.JWKS) != 0 {
			t.Errorf("export holds the pushed keys: %s", ti.JWKS)
		}
	}
	res, err = Apply(ctx, s, doc, Options{Prune: true})
	if err != nil || !res.Plan.Empty() {
		t.Fatalf("applying the export: %v\n%s", err, res.Plan)
	}
	// A change shows as an update with its diff; prune removes what the
	// document no longer names.
	changed := trustDoc(t, "    maxTokenLifetimeSeconds: 600\n")
	changed.Tenants[0].TrustedIssuers = changed.Tenants[0].TrustedIssuers[1:]
	changed.Tenants[0].IssuerSets = nil
	res, err = Apply(ctx, s, changed, Options{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	plan := res.Plan.String()
	for _, want := range []string{"- trusted issuer 72f988bf-86f1-41af-91ab-2d7cd011db47/air-gapped", "- issuer set 72f988bf-86f1-41af-91ab-2d7cd011db47/prod", "~ trusted issuer 72f988bf-86f1-41af-91ab-2d7cd011db47/aks-east", "maxTokenLifetimeSeconds: (none) → 600"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
}

// A document's faults in trust objects are reported with their paths.
func TestTrustObjectFaults(t *testing.T) {
	doc, perr := Parse(strings.NewReader(`tenants:
- id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  displayName: Contoso
  trustedIssuers:
  - name: bad
    issuer: https://bad.example
    algorithms: [HS256]
    jwks: {"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}
  - name: BAD
    issuer: https://bad.example
`))
	if perr == nil {
		perr = doc.Validate()
	}
	if perr == nil {
		t.Fatal("a document with bad trusted issuers was accepted")
	}
	for _, want := range []string{
		"tenants[0].trustedIssuers[0].jwks: private key material in a key set: key 0 has the private or symmetric key parameter",
		"tenants[0].trustedIssuers[0].algorithms[0]: must be one of",
		"tenants[0].trustedIssuers[1].name: is also the name of trustedIssuers[0]",
		"tenants[0].trustedIssuers[1].issuer: is also the issuer of trustedIssuers[0]",
	} {
		if !strings.Contains(perr.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, perr)
		}
	}
}
