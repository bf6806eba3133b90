package gateway_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestRunScript runs the example as its README says — ./run.sh — and checks
// what it proves (200 for the approved identity, 401 without a token) and
// that it leaves nothing in the tree.
func TestRunScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wif and runs four processes")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("run.sh needs curl: apt-get install curl")
	}
	list := func() []string {
		es, err := os.ReadDir(".")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	before := list()
	out, err := exec.Command("bash", "run.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		`with the approved identity's token: 200 {"clientId":"ad0c8137-362f-451a-93b0-d08040425294","path":"/","roles":"","tenantId":"d12058fe-ecf4-454a-9a69-cef5686fc24f"}`,
		`without a token: 401 {"statusCode":401,"message":"Call from non-approved managed identity is not allowed","error":"invalid_token"`,
		"ok: the policy admits the approved identity",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run.sh output lacks %q:\n%s", want, out)
		}
	}
	if after := list(); !slices.Equal(before, after) {
		t.Errorf("run.sh left files behind: %v → %v", before, after)
	}
}
