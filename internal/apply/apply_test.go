package apply

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
)

func mustParse(t *testing.T, s string) *Document {
	t.Helper()
	doc, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return doc
}

func exampleDoc(t *testing.T) *Document {
	t.Helper()
	b, err := os.ReadFile("testdata/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(b))
}

func TestApplyIsIdempotentWithoutIDs(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	doc := exampleDoc(t)
	res, err := Apply(ctx, s, doc, Options{})
	if err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	// 1 tenant, 2 apps, 1 identity, 2 credentials, 2 assignments.
	if res.Applied != 8 || res.Plan.Count(Create) != 8 {
		t.Fatalf("first apply made %d changes:\n%s", res.Applied, res.Plan)
	}
	res, err = Apply(ctx, s, exampleDoc(t), Options{})
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if !res.Plan.Empty() {
		t.Fatalf("second apply is not a no-op:\n%s", res.Plan)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.AppRoleAssignments) != 2 || len(snap.Credentials) != 2 {
		t.Fatalf("snapshot: %d assignments, %d credentials", len(snap.AppRoleAssignments), len(snap.Credentials))
	}
	if got := snap.Applications[0].AppID + snap.Applications[1].AppID; !strings.Contains(got, "11111111-1111-1111-1111-111111111111") {
		t.Errorf("the given appId was not kept: %s", got)
	}
}

func TestExportApplyRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := memory.New()
	if _, err := Apply(ctx, src, exampleDoc(t), Options{}); err != nil {
		t.Fatal(err)
	}
	doc, err := Export(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	y, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The export parses back (strictly) and is a no-op on the same store.
	again := mustParse(t, string(y))
	res, err := Apply(ctx, src, again, Options{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Plan.Empty() {
		t.Fatalf("export | apply --prune on the same store changed things:\n%s", res.Plan)
	}
	// On an empty store it recreates the same directory, ids and all.
	dst := memory.New()
	if _, err := Apply(ctx, dst, mustParse(t, string(y)), Options{}); err != nil {
		t.Fatal(err)
	}
	doc2, err := Export(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	y2, _ := doc2.Marshal()
	if !bytes.Equal(y, y2) {
		t.Fatalf("export of the recreated directory differs:\n--- original\n%s\n--- recreated\n%s", y, y2)
	}
}

func TestPlanUpdatesAndPrune(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	if _, err := Apply(ctx, s, exampleDoc(t), Options{}); err != nil {
		t.Fatal(err)
	}
	changed := mustParse(t, `tenants:
- id: 72F988BF-86F1-41AF-91AB-2D7CD011DB47
  displayName: Contoso Ltd
  managedIdentities:
  - name: DEMO
    subscriptionId: 00000000-0000-0000-0000-000000000001
    resourceGroup: rg
    location: westeurope
    federatedCredentials:
    - name: kubernetes-demo
      issuer: https://127.0.0.1:6443/
      subject: system:serviceaccount:default:demo
`)
	// Without prune: updates only, nothing deleted.
	p, err := MakePlan(ctx, s, changed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `~ tenant 72f988bf-86f1-41af-91ab-2d7cd011db47 ("Contoso")
    displayName: "Contoso" → "Contoso Ltd"
~ managed identity rg/demo (clientId CLIENT)
    location: (none) → "westeurope"
~ federated credential "kubernetes-demo" of managed identity rg/demo
    issuer: "https://127.0.0.1:6443" → "https://127.0.0.1:6443/"
Plan: 0 to create, 3 to update, 0 to delete.
`
	snap, _ := s.Snapshot(ctx)
	want = strings.ReplaceAll(want, "CLIENT", snap.ManagedIdentities[0].ClientID)
	if p.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", p, want)
	}
	// Dry run changes nothing.
	res, err := Apply(ctx, s, changed, Options{Prune: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Plan.Count(Delete) != 5 {
		t.Fatalf("dry run: applied %d, plan:\n%s", res.Applied, res.Plan)
	}
	if snap2, _ := s.Snapshot(ctx); snap2.Revision != snap.Revision {
		t.Fatalf("dry run changed the revision %d → %d", snap.Revision, snap2.Revision)
	}
	// Prune deletes both apps, their credential and both assignments.
	res, err = Apply(ctx, s, changed, Options{Prune: true})
	if err != nil {
		t.Fatalf("Apply --prune: %v\n%s", err, res.Plan)
	}
	snap3, _ := s.Snapshot(ctx)
	if len(snap3.Applications) != 0 || len(snap3.AppRoleAssignments) != 0 || len(snap3.Credentials) != 1 || snap3.Tenants[0].DisplayName != "Contoso Ltd" {
		t.Fatalf("after prune: %+v", snap3)
	}
	if p, _ := MakePlan(ctx, s, changed, Options{Prune: true}); !p.Empty() {
		t.Fatalf("second prune not a no-op:\n%s", p)
	}
}

func TestPlanReportsUnresolvableReferences(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	doc := mustParse(t, `tenants:
- id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  displayName: Contoso
  applications:
  - displayName: api
    identifierUris: [api://api]
    appRoles: [{value: Data.Read}]
  appRoleAssignments:
  - {principal: nobody, resource: api://api, role: Data.Read}
  - {principal: api, resource: api://missing, role: Data.Read}
  - {principal: api, resource: api://api, role: Data.Write}
`)
	_, err := MakePlan(ctx, s, doc, Options{})
	got := fields(t, err)
	want := []string{
		"tenants[0].appRoleAssignments[0].principal",
		"tenants[0].appRoleAssignments[1].resource",
		"tenants[0].appRoleAssignments[2].role",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("fields %v, want %v (%v)", got, want, err)
	}
}

func TestPlanRejectsChangedIDs(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	if _, err := Apply(ctx, s, exampleDoc(t), Options{}); err != nil {
		t.Fatal(err)
	}
	doc := mustParse(t, `tenants:
- id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  displayName: Contoso
  managedIdentities:
  - name: demo
    subscriptionId: 00000000-0000-0000-0000-000000000001
    resourceGroup: rg
    clientId: 99999999-9999-4999-8999-999999999999
`)
	_, err := MakePlan(ctx, s, doc, Options{})
	if got := fields(t, err); len(got) != 1 || got[0] != "tenants[0].managedIdentities[0].clientId" {
		t.Fatalf("fields %v (%v)", got, err)
	}
}

var _ store.DirectoryStore = (*memory.Store)(nil)

func TestPlanRefusesToDropAssignedRoles(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	if _, err := Apply(ctx, s, exampleDoc(t), Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("testdata/directory.yaml")
	src := strings.Replace(string(b), "    - {value: Data.Read, allowedMemberTypes: [Application]}\n", "", 1)
	_, err := MakePlan(ctx, s, mustParse(t, strings.Replace(src, "  - {principal: demo, resource: api://provider-api, role: Data.Read}\n", "", 1)), Options{})
	if got := fields(t, err); len(got) != 1 || got[0] != "tenants[0].applications[0].appRoles" {
		t.Fatalf("fields %v (%v)", got, err)
	}
	// With prune, the assignment goes first and the role after it.
	res, err := Apply(ctx, s, mustParse(t, strings.Replace(src, "  - {principal: demo, resource: api://provider-api, role: Data.Read}\n", "", 1)), Options{Prune: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Plan)
	}
	if res.Plan.Count(Delete) != 1 || res.Plan.Count(Update) != 1 {
		t.Fatalf("plan:\n%s", res.Plan)
	}
}

// TestCredentialLimitIsTheStores: a document with 21 credentials on one
// identity is refused by a store with Entra's limit of 20 — naming the
// field, the limit and the flag — and applies to one configured for 25.
func TestCredentialLimitIsTheStores(t *testing.T) {
	var b strings.Builder
	b.WriteString("tenants:\n- id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n  displayName: x\n  managedIdentities:\n  - name: mi1\n    resourceGroup: rg\n    federatedCredentials:\n")
	for i := 0; i < 21; i++ {
		b.WriteString("    - {name: cred-" + string(rune('a'+i)) + ", issuer: https://i, subject: s" + string(rune('a'+i)) + "}\n")
	}
	doc, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("the document itself is valid: %v", err)
	}
	ctx := context.Background()
	_, err = Apply(ctx, memory.New(), doc, Options{})
	if err == nil || !strings.Contains(err.Error(), "already has 20 federated credentials, the most allowed (wif serve --max-credentials-per-identity; Entra allows 20)") {
		t.Fatalf("Entra's limit: %v", err)
	}
	st := memory.New(memory.WithMaxCredentialsPerParent(25))
	if _, err := Apply(ctx, st, doc, Options{}); err != nil {
		t.Fatalf("a limit of 25: %v", err)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil || len(snap.Credentials) != 21 {
		t.Fatalf("%d credentials stored: %v", len(snap.Credentials), err)
	}
}
