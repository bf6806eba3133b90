package gateway

import (
	"os"
	"testing"

	"github.com/wif-project/wif/internal/apply"
)

// TestExamples keeps examples/gateway loadable: its gateway config, policy
// and the directory document for wif serve.
func TestExamples(t *testing.T) {
	cfg, err := LoadConfig("../../examples/gateway/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.LoadPolicies(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../../examples/gateway/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := apply.Parse(f); err != nil {
		t.Fatal(err)
	}
}
