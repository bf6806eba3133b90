package buildinfo

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203100000-0123456789ab+dirty"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-12-03T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	read := func() (*debug.BuildInfo, bool) { return bi, true }
	got := from("", "", read)
	if got.Version != bi.Main.Version || got.Revision != "0123456789abcdef0123456789abcdef01234567" || !got.Modified || got.Time != "2026-12-03T10:00:00Z" {
		t.Fatalf("%+v", got)
	}
	if s := got.String(); !strings.HasPrefix(s, "wif v0.0.0-20261203100000-0123456789ab+dirty (revision 0123456789ab, 2026-12-03T10:00:00Z, modified) go") {
		t.Fatalf("%q", s)
	}
	// Stamped values win; a stamped revision is not "modified".
	got = from("v1.2.3", "feedface", read)
	if got.Version != "v1.2.3" || got.Revision != "feedface" || got.Modified {
		t.Fatalf("%+v", got)
	}
	got = from("", "", func() (*debug.BuildInfo, bool) { return nil, false })
	if got.Version != "(devel)" || got.Revision != "" {
		t.Fatalf("%+v", got)
	}
}

// TestBuiltBinary builds wif as a user does: go build from this checkout
// records the commit (wif version names git's HEAD), and the ldflags an
// image build passes replace version and revision.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "wif")
	build := func(args ...string) Info {
		t.Helper()
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), "./cmd/wif")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "version", "-o", "json").Output()
		if err != nil {
			t.Fatalf("wif version: %v", err)
		}
		var in Info
		if err := json.Unmarshal(out, &in); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return in
	}
	// -buildvcs=true: go build's default, which GOFLAGS may turn off.
	in := build("-buildvcs=true")
	if in.Revision != strings.TrimSpace(string(head)) || in.Version == "(devel)" || in.Time == "" {
		t.Fatalf("go build: %+v, HEAD %s", in, head)
	}
	in = build("-ldflags", "-X github.com/wif-project/wif/internal/buildinfo.version=v9.8.7 -X github.com/wif-project/wif/internal/buildinfo.revision=abc123")
	if in.Version != "v9.8.7" || in.Revision != "abc123" || in.Modified {
		t.Fatalf("ldflags: %+v", in)
	}
	_ = os.Remove(bin)
}
