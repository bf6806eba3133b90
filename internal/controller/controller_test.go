package controller

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestResourceGroup(t *testing.T) {
	for _, tc := range []struct {
		ref     *resourceRef
		want    string
		wantErr string
	}{
		{&resourceRef{Name: "rg-a"}, "rg-a", ""},
		{&resourceRef{ARMID: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-b"}, "rg-b", ""},
		{&resourceRef{ARMID: "/subscriptions/x/resourcegroups/RG-C/providers/Microsoft.Resources/deployments/d"}, "RG-C", ""},
		{&resourceRef{ARMID: "/subscriptions/x"}, "", "names no resource group"},
		{nil, "", "spec.owner is required"},
		{&resourceRef{}, "", "spec.owner is required"},
	} {
		got, err := resourceGroup(tc.ref)
		if got != tc.want || (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("resourceGroup(%+v) = %q, %v; want %q, %q", tc.ref, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPolicyAndScope(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetNamespace("team-a")
	c := &Controller{cfg: Config{WatchNamespaces: []string{"team-b"}}}
	if p, err := policyOf(u); p != PolicyManage || err != nil {
		t.Errorf("default policy = %q, %v", p, err)
	}
	if c.inScope(u) {
		t.Error("an object of an unwatched namespace is in scope")
	}
	u.SetAnnotations(map[string]string{OptInAnnotation: "true", ReconcilePolicyAnnotation: "Skip"})
	if !c.inScope(u) {
		t.Error("an opted-in object is out of scope")
	}
	if _, err := policyOf(u); err == nil || !strings.Contains(err.Error(), "must be manage, skip or detach-on-delete") {
		t.Errorf("policy Skip (wrong case): %v", err)
	}
	c.cfg.WatchNamespaces = []string{"*"}
	u.SetAnnotations(nil)
	if !c.inScope(u) {
		t.Error("'*' does not watch every namespace")
	}
}

// A status read back from the API server (int64 numbers) equals the one
// built (ints), so an unchanged status is not written again.
func TestEqualJSON(t *testing.T) {
	built := map[string]any{"clientId": "x", "conditions": []any{map[string]any{"type": "Ready", "observedGeneration": int64(2)}}}
	read := map[string]any{"clientId": "x", "conditions": []any{map[string]any{"type": "Ready", "observedGeneration": float64(2)}}}
	if !equalJSON(built, read) {
		t.Error("equal statuses compare unequal")
	}
	read["clientId"] = "y"
	if equalJSON(built, read) {
		t.Error("different statuses compare equal")
	}
}
