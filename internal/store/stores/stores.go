// Package stores opens a store.Store from the URL a user gives (--store):
//
//	memory:                      in memory, gone at exit (tests, wif dev)
//	sqlite:PATH                  a SQLite file (sqlite:///abs/path also works)
//	PATH.db                      the same, for a bare file name ending in .db
//	postgres://... postgresql:// a PostgreSQL database (a libpq URL)
package stores

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/postgres"
	"github.com/wif-project/wif/internal/store/sqlite"
)

// Compile-time checks that every backend is a store.Store.
var (
	_ store.Store = (*memory.Store)(nil)
	_ store.Store = (*sqlite.Store)(nil)
	_ store.Store = (*postgres.Store)(nil)
)

// Kinds of store.
const (
	Memory   = "memory"
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Parse says which backend a store URL names and what it is given: the
// file path for SQLite, the URL itself for PostgreSQL, nothing for memory.
func Parse(raw string) (kind, target string, err error) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "memory:" || s == "memory":
		return Memory, "", nil
	case strings.HasPrefix(s, "sqlite:"):
		path := strings.TrimPrefix(s, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", fmt.Errorf("store %q names no file: use sqlite:PATH, e.g. sqlite:wif.db", raw)
		}
		return SQLite, path, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return Postgres, s, nil
	case !strings.Contains(s, "://") && strings.HasSuffix(s, ".db"):
		return SQLite, s, nil
	}
	return "", "", fmt.Errorf("unknown store %q: use memory:, sqlite:PATH or postgres://...", Redact(raw))
}

// Open opens the store a URL names. logger may be nil.
func Open(ctx context.Context, raw string, logger *slog.Logger) (store.Store, error) {
	return OpenWith(ctx, raw, Options{Logger: logger})
}

// Options are what every backend is opened with.
type Options struct {
	Logger *slog.Logger
	// MaxCredentialsPerParent bounds the federated credentials of one
	// identity or application (default 20, Entra's).
	MaxCredentialsPerParent int
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, raw string, o Options) (store.Store, error) {
	logger := o.Logger
	kind, target, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	switch kind {
	case Memory:
		return memory.New(memory.WithMaxCredentialsPerParent(o.MaxCredentialsPerParent)), nil
	case SQLite:
		s, err := sqlite.Open(ctx, target, sqlite.Options{Logger: logger, MaxCredentialsPerParent: o.MaxCredentialsPerParent})
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := postgres.Open(ctx, target, postgres.Options{Logger: logger, MaxCredentialsPerParent: o.MaxCredentialsPerParent})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", Redact(raw), err)
		}
		return s, nil
	}
}

// Redact hides the password of a URL, for logs and error messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.Index(raw, "@"); i >= 0 && strings.Contains(raw, "://") {
			// Unparseable but may hold user:password@: keep only the scheme
			// and what follows the '@'.
			scheme, _, _ := strings.Cut(raw, "://")
			return scheme + "://xxxxx@" + raw[i+1:]
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
