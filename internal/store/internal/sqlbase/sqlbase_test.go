package sqlbase

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestRebind(t *testing.T) {
	d := &Dialect{Numbered: true}
	if got := d.Rebind(`SELECT a FROM t WHERE b = ? AND (c < ? OR d = ?)`); got != `SELECT a FROM t WHERE b = $1 AND (c < $2 OR d = $3)` {
		t.Errorf("numbered: %s", got)
	}
	d = &Dialect{}
	if got := d.Rebind(`x = ?`); got != `x = ?` {
		t.Errorf("plain: %s", got)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := LoadMigrations(fstest.MapFS{
		"m/0002_two.sql": file("B"), "m/0001_one.sql": file("A"), "m/README": file("x"),
	}, "m")
	if err != nil || len(ms) != 2 || ms[0].Name != "one" || ms[1].SQL != "B" || ms[1].Version != 2 {
		t.Fatalf("LoadMigrations = %+v, %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"m/0001_a.sql": file(""), "m/0003_c.sql": file("")},
		"duplicate": {"m/0001_a.sql": file(""), "m/01_b.sql": file("")},
		"bad name":  {"m/init.sql": file("")},
		"zero":      {"m/0000_a.sql": file("")},
	} {
		if _, err := LoadMigrations(fsys, "m"); err == nil || !strings.Contains(err.Error(), "migration") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}
