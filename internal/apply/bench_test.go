package apply

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/store/memory"
)

// bigDoc is a tenant with n identities, each with two credentials and a role.
func bigDoc(n int) string {
	var b strings.Builder
	b.WriteString("tenants:\n- id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n  displayName: big\n  applications:\n  - displayName: api\n    identifierUris: [api://api]\n    appRoles: [{value: Data.Read}]\n  managedIdentities:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: mi-%04d\n    resourceGroup: rg\n    federatedCredentials:\n    - {name: k8s, issuer: https://k8s.example, subject: \"system:serviceaccount:ns:sa-%d\"}\n    - {name: github, issuer: https://token.actions.githubusercontent.com, subject: \"repo:o/r-%d:ref:refs/heads/main\"}\n", i, i, i)
	}
	b.WriteString("  appRoleAssignments:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {principal: mi-%04d, resource: api://api, role: Data.Read}\n", i)
	}
	return b.String()
}

// BenchmarkNoOpPlan measures what wif serve --directory pays at every start
// once the directory is in place: parse, validate and plan a no-op.
func BenchmarkNoOpPlan(b *testing.B) {
	ctx := context.Background()
	s := memory.New()
	src := bigDoc(500)
	doc, err := Parse(strings.NewReader(src))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Apply(ctx, s, doc, Options{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		doc, err := Parse(strings.NewReader(src))
		if err != nil {
			b.Fatal(err)
		}
		p, err := MakePlan(ctx, s, doc, Options{})
		if err != nil || !p.Empty() {
			b.Fatalf("%v %d", err, len(p.Changes))
		}
	}
}

// BenchmarkPlanScaling measures planning a no-op over a tenant of n
// identities (two credentials and a role each): linear planning keeps
// ns/identity flat as n grows.
//
//	go test -run '^$' -bench PlanScaling ./internal/apply/
func BenchmarkPlanScaling(b *testing.B) {
	for _, n := range []int{1000, 4000, 16000} {
		b.Run(fmt.Sprintf("identities=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s := memory.New()
			doc, err := Parse(strings.NewReader(bigDoc(n)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Apply(ctx, s, doc, Options{}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				p, err := MakePlan(ctx, s, doc, Options{})
				if err != nil || !p.Empty() {
					b.Fatalf("%v %d", err, len(p.Changes))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/identity")
		})
	}
}
