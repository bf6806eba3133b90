package apply

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
)

func TestParseExample(t *testing.T) {
	f, err := os.Open("testdata/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(doc.Tenants) != 1 {
		t.Fatalf("tenants = %d, want 1", len(doc.Tenants))
	}
	tn := doc.Tenants[0]
	if len(tn.Applications) != 2 || len(tn.ManagedIdentities) != 1 || len(tn.AppRoleAssignments) != 2 {
		t.Fatalf("got %d apps, %d identities, %d assignments", len(tn.Applications), len(tn.ManagedIdentities), len(tn.AppRoleAssignments))
	}
	if got := tn.ManagedIdentities[0].FederatedCredentials[0].Subject; got != "system:serviceaccount:default:demo" {
		t.Errorf("subject = %q", got)
	}
}

// fields returns the Field of every validation error in err, in order.
func fields(t *testing.T, err error) []string {
	t.Helper()
	var ves directory.ValidationErrors
	if !errors.As(err, &ves) {
		t.Fatalf("error %v (%T) is not ValidationErrors", err, err)
	}
	var out []string
	for _, e := range ves {
		out = append(out, e.Field)
	}
	return out
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		// wantErr is a substring of the error; wantFields, when set, are the
		// exact fields of the validation errors.
		wantErr    string
		wantFields []string
	}{
		{name: "empty", doc: "", wantErr: "directory document is empty"},
		{name: "unknown key", doc: "tenants: []\nextra: 1\n", wantErr: `directory document:2:1: unknown field "extra"; fields here: tenants`},
		{name: "unknown nested key", doc: "tenants:\n- id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n  displayName: x\n  managedIdentity: []\n",
			wantErr: `directory document:4:3: unknown field "managedIdentity" in tenants[0]; did you mean "managedIdentities"?`},
		{name: "typo deep down", doc: "tenants:\n- id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n  displayName: x\n  managedIdentities:\n  - name: mi1\n    resourceGroup: rg\n    federatedCredential:\n    - {name: c, issuer: https://i, subject: s}\n",
			wantErr: `directory document:7:5: unknown field "federatedCredential" in tenants[0].managedIdentities[0]; did you mean "federatedCredentials"?`},
		{name: "duplicate key", doc: "tenants: []\ntenants: []\n", wantErr: "already set in map"},
		{name: "wrong type", doc: "tenants: {a: 1}\n", wantErr: "cannot unmarshal"},
		{name: "not yaml", doc: "tenants: [\n", wantErr: "parse directory document"},
		{
			name: "every fault at once",
			doc: `tenants:
- id: not-a-guid
  displayName: ""
  applications:
  - displayName: a
    identifierUris: ["api://x/.default"]
    requestedAccessTokenVersion: 3
  - displayName: a
  managedIdentities:
  - name: ok-name
    resourceGroup: rg
    federatedCredentials:
    - {name: cred1, issuer: "http://insecure", subject: s}
    - {name: CRED1, issuer: " https://x", subject: s, audiences: [a, b]}
  - name: OK-NAME
    resourceGroup: RG
  appRoleAssignments:
  - {principal: "", resource: r, role: x}
`,
			wantFields: []string{
				"tenants[0].id",
				"tenants[0].displayName",
				"tenants[0].applications[0].identifierUris[0]",
				"tenants[0].applications[0].requestedAccessTokenVersion",
				"tenants[0].applications[1].displayName",
				"tenants[0].managedIdentities[0].federatedCredentials[0].issuer",
				"tenants[0].managedIdentities[0].federatedCredentials[1].issuer",
				"tenants[0].managedIdentities[0].federatedCredentials[1].audiences",
				"tenants[0].managedIdentities[0].federatedCredentials[1].name",
				"tenants[0].managedIdentities[1].name",
				"tenants[0].appRoleAssignments[0].principal",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.doc))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if tt.wantFields != nil {
				got := fields(t, err)
				if strings.Join(got, "\n") != strings.Join(tt.wantFields, "\n") {
					t.Errorf("fields:\n%s\nwant:\n%s\n(error: %v)", strings.Join(got, "\n"), strings.Join(tt.wantFields, "\n"), err)
				}
			}
		})
	}
}

// TestParseAliasBomb: a document that fails strict decoding and nests
// aliases a billion times over is refused promptly, not walked.
func TestParseAliasBomb(t *testing.T) {
	doc := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
		"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ntenants: [*h]\n"
	start := time.Now()
	if _, err := Parse(strings.NewReader(doc)); err == nil {
		t.Fatal("accepted")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}
