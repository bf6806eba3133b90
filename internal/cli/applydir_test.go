package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A directory kept as one file per resource group: export writes it, apply
// -f DIR reads it back as one document (prune included), and the faults of
// one file are reported with that file's name.
func TestApplyDirectory(t *testing.T) {
	src := startAdminEnv(t, true)
	if _, _, err := run(t, src.env(), fixture, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, src.env(), "identity", "create", "-n", "made-by-cli", "-g", "other-rg")
	dir := filepath.Join(t.TempDir(), "directory")
	out, _ := mustRun(t, src.env(), "export", "--split-by", "resource-group", "--out", dir)
	if !strings.HasPrefix(out, "wrote 3 files to "+dir) {
		t.Fatalf("export --split-by: %s", out)
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	want := []string{src.Tenant + "/resource-groups/other-rg.yaml", src.Tenant + "/resource-groups/rg.yaml", src.Tenant + "/tenant.yaml"}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files: %v, want %v", files, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, want[0])); !strings.Contains(string(b), "made-by-cli") || strings.Contains(string(b), "kubernetes-demo") {
		t.Errorf("%s:\n%s", want[0], b)
	}
	// The split directory is the same directory: no change, even pruning.
	out, _ = mustRun(t, src.env(), "apply", "-f", dir, "--prune")
	if out != "No changes: the directory already matches the document.\n" {
		t.Fatalf("apply -f DIR --prune of the export:\n%s", out)
	}
	// Dropping one file with --prune deletes what only it held.
	if err := os.Remove(filepath.Join(dir, want[0])); err != nil {
		t.Fatal(err)
	}
	out, _ = mustRun(t, src.env(), "apply", "-f", dir, "--prune", "--dry-run")
	if !strings.Contains(out, "- managed identity other-rg/made-by-cli") || !strings.Contains(out, "0 to create, 0 to update, 1 to delete") {
		t.Fatalf("prune after removing a file:\n%s", out)
	}
	// Repeated -f works too; an object in two files is refused naming both.
	dup := filepath.Join(t.TempDir(), "dup.yaml")
	demo := filepath.Join(dir, want[1])
	b, _ := os.ReadFile(demo)
	if err := os.WriteFile(dup, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := run(t, src.env(), "", "apply", "-f", dir, "-f", dup, "--dry-run")
	if err == nil || !strings.Contains(err.Error()+errOut, dup+": defines managed identity rg/") || !strings.Contains(err.Error()+errOut, "which "+demo+" defines too") {
		t.Fatalf("an identity in two files: %v %s", err, errOut)
	}
	// A typo in one file of the directory names that file, line and column.
	if err := os.WriteFile(filepath.Join(dir, src.Tenant, "resource-groups", "typo.yaml"), []byte("tenants:\n- id: "+src.Tenant+"\n  displayName: Contoso\n  managedIdentities:\n  - name: x\n    resourceGroup: typo\n    clientIdd: y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = run(t, src.env(), "", "apply", "-f", dir, "--dry-run")
	if err == nil || !strings.Contains(err.Error()+errOut, "typo.yaml:7:5") || !strings.Contains(err.Error()+errOut, "clientId") {
		t.Fatalf("a typo in one file: %v %s", err, errOut)
	}
}
