package stores

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/postgres"
	"github.com/wif-project/wif/internal/store/sqlite"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, kind, target, err string
	}{
		{"memory:", Memory, "", ""},
		{" memory ", Memory, "", ""},
		{"sqlite:wif.db", SQLite, "wif.db", ""},
		{"sqlite:/var/lib/wif/state", SQLite, "/var/lib/wif/state", ""},
		{"sqlite:///var/lib/wif.db", SQLite, "/var/lib/wif.db", ""},
		{"data/wif.db", SQLite, "data/wif.db", ""},
		{"postgres://wif@db:5432/wif?sslmode=verify-full", Postgres, "postgres://wif@db:5432/wif?sslmode=verify-full", ""},
		{"postgresql://db/wif", Postgres, "postgresql://db/wif", ""},
		{"sqlite:", "", "", `store "sqlite:" names no file: use sqlite:PATH, e.g. sqlite:wif.db`},
		{"mysql://db/wif", "", "", `unknown store "mysql://db/wif": use memory:, sqlite:PATH or postgres://...`},
		{"wif.sqlite", "", "", `unknown store "wif.sqlite": use memory:, sqlite:PATH or postgres://...`},
		{"", "", "", `unknown store "": use memory:, sqlite:PATH or postgres://...`},
		{"postgress://wif:s3cret@db/wif", "", "", `unknown store "postgress://wif:xxxxx@db/wif": use memory:, sqlite:PATH or postgres://...`},
		{"http://x.db", "", "", `unknown store "http://x.db": use memory:, sqlite:PATH or postgres://...`},
	} {
		kind, target, err := Parse(tc.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if kind != tc.kind || target != tc.target || gotErr != tc.err {
			t.Errorf("Parse(%q) = %q, %q, %q; want %q, %q, %q", tc.in, kind, target, gotErr, tc.kind, tc.target, tc.err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://wif:s3cret@db:5432/wif": "postgres://wif:xxxxx@db:5432/wif",
		"postgres://wif@db/wif":             "postgres://wif@db/wif",
		"postgres://wif:s3cret%zz@db/wif":   "postgres://xxxxx@db/wif",
		"sqlite:wif.db":                     "sqlite:wif.db",
		"postgres://db/wif?password=s3cret": "postgres://db/wif?password=s3cret",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	cases := []struct {
		url  string
		want any
	}{
		{"memory:", &memory.Store{}},
		{"sqlite:" + filepath.Join(dir, "a.db"), &sqlite.Store{}},
		{filepath.Join(dir, "b.db"), &sqlite.Store{}},
	}
	if pg, ok := postgresURL(t); ok {
		cases = append(cases, struct {
			url  string
			want any
		}{pg, &postgres.Store{}})
	}
	for _, tc := range cases {
		s, err := Open(ctx, tc.url, nil)
		if err != nil {
			t.Errorf("Open(%q): %v", tc.url, err)
			continue
		}
		if got, want := typeName(s), typeName(tc.want); got != want {
			t.Errorf("Open(%q) is a %s, want a %s", tc.url, got, want)
		}
		// The store works.
		if _, err := s.CreateTenant(ctx, directory.Tenant{ID: directory.NewID(), DisplayName: "t"}); err != nil {
			t.Errorf("Open(%q): create tenant: %v", tc.url, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close %q: %v", tc.url, err)
		}
	}
	for _, f := range []string{"a.db", "b.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("sqlite file %s not created: %v", f, err)
		}
	}
	if _, err := Open(ctx, "redis://localhost", nil); err == nil || !strings.HasPrefix(err.Error(), `unknown store "redis://localhost"`) {
		t.Errorf("Open(redis://): %v", err)
	}
}

// postgresURL returns the test server's URL with search_path set to a fresh
// schema that is dropped after the test, or false when there is no server
// (PostgreSQL itself is tested in store/postgres; here only the choice of
// backend is).
func postgresURL(t *testing.T) (string, bool) {
	dsn := os.Getenv("WIF_TEST_POSTGRES_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Logf("PostgreSQL case skipped: %v", err)
		return "", false
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("wif_test_stores_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), true
}

func typeName(v any) string {
	switch v.(type) {
	case *memory.Store:
		return "memory"
	case *sqlite.Store:
		return "sqlite"
	case *postgres.Store:
		return "postgres"
	}
	return "unknown"
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"memory:", "sqlite:wif.db", "sqlite:///x", "a.db", "postgres://u:p@h/db", "postgresql://h", "x://y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		kind, target, err := Parse(raw)
		if err != nil {
			if kind != "" || target != "" {
				t.Fatalf("Parse(%q) failed but returned %q, %q", raw, kind, target)
			}
			// A password in the URL never reaches the message.
			if u, perr := url.Parse(raw); perr == nil && u.User != nil {
				p, _ := u.User.Password()
				if len(p) >= 3 && !strings.Contains("xxxxx", p) && strings.Count(raw, p) == 1 && strings.Contains(err.Error(), p) {
					t.Fatalf("error for %q leaks the password: %v", raw, err)
				}
			}
			return
		}
		switch kind {
		case Memory:
			if target != "" {
				t.Fatalf("memory store with target %q", target)
			}
		case SQLite, Postgres:
			if target == "" {
				t.Fatalf("Parse(%q): %s store with no target", raw, kind)
			}
		default:
			t.Fatalf("Parse(%q): unknown kind %q", raw, kind)
		}
	})
}
