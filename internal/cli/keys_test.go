package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/jose"
)

// TestKeysCommands drives wif keys against a real token service: list,
// rotate, rotate --now, retire, and a rewrap the server cannot do (no
// key-encryption key configured); the table output is a golden file.
func TestKeysCommands(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	list := func() []jose.KeyInfo {
		t.Helper()
		out, _ := mustRun(t, env, "keys", "list", "-o", "json")
		var ks []jose.KeyInfo
		if err := json.Unmarshal([]byte(out), &ks); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return ks
	}
	first := list()
	if len(first) != 1 || first[0].State != jose.StateActive {
		t.Fatalf("keys at start: %+v", first)
	}
	_, errOut := mustRun(t, env, "keys", "rotate")
	if !strings.Contains(errOut, "is published now and signs from") {
		t.Errorf("rotate said %q", errOut)
	}
	if _, _, err := run(t, env, "", "keys", "rotate"); err == nil || !strings.Contains(err.Error(), "a next key is already published") {
		t.Errorf("a second rotate: %v", err)
	}
	_, errOut = mustRun(t, env, "keys", "rotate", "--now")
	if !strings.Contains(errOut, "signs from now on") {
		t.Errorf("rotate --now said %q", errOut)
	}
	ks := list()
	states := map[string]string{}
	for _, k := range ks {
		states[k.KeyID] = k.State
	}
	if len(ks) != 2 || states[first[0].KeyID] != jose.StateRetiring {
		t.Fatalf("after rotate --now (the pending next key dropped): %+v", ks)
	}
	mustRun(t, env, "keys", "retire", first[0].KeyID)
	out, _ := mustRun(t, env, "keys", "list")
	for _, k := range list() {
		out = strings.ReplaceAll(out, k.KeyID, map[bool]string{true: "<first>", false: "<current>"}[k.KeyID == first[0].KeyID])
	}
	out = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(out, "<time>")
	// Keys created in the same second list in kid order: sort the rows.
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(lines[2:])
	golden(t, "keys-list", strings.Join(lines, "\n")+"\n")

	// Every operation is in the audit log.
	audit, _ := mustRun(t, env, "audit", "list", "-o", "json", "--query", "[?resource=='signingKeys'].[result, reason]")
	for _, want := range []string{`"rotate: new signing key`, `"failure",`, `"rotate --now: new signing key`, `"retire ` + first[0].KeyID} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, audit)
		}
	}

	kek := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kek, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, env, "", "keys", "rewrap", "--new-kek-file", kek); err == nil || !strings.Contains(err.Error(), "no key-encryption key is configured") {
		t.Errorf("rewrap on a server without a key-encryption key: %v", err)
	}
}
