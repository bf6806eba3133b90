package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Backup writes a consistent copy of the database at path to out while
// wif may be serving from it: SQLite's VACUUM INTO reads one snapshot (WAL
// lets writers go on) and writes a compact, self-contained file. It does
// not open the store (no migration runs against a live database). out must
// not exist.
func Backup(ctx context.Context, path, out string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("backup: the database %s: %w", path, err)
	}
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("backup: %s exists: give a new file", out)
	}
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000")
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", path, err)
	}
	defer db.Close()
	tmp := out + ".partial"
	_ = os.Remove(tmp)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup: VACUUM INTO %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // it holds sealed signing keys
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(filepath.Dir(out))
}

// Restore puts the backup file from in place of the database at path,
// after checking it: SQLite's integrity check passes and its schema is one
// this wif knows. An existing database is replaced only with force. wif
// must not be serving from path meanwhile.
func Restore(ctx context.Context, from, path string, force bool) error {
	if err := CheckBackup(ctx, from); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("restore: %s exists: stop wif and add --force to replace it", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	tmp := path + ".restoring"
	if err := copyFile(from, tmp); err != nil {
		return err
	}
	for _, side := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + side); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: remove %s: %w", path+side, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// CheckBackup opens a backup read-only and checks that SQLite finds it
// intact and that its schema is not newer than this wif's.
func CheckBackup(ctx context.Context, file string) error {
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("backup file: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		return fmt.Errorf("open backup %s: %w", file, err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil {
		return fmt.Errorf("backup %s is not a SQLite database: %w", file, err)
	}
	if ok != "ok" {
		return fmt.Errorf("backup %s fails SQLite's integrity check: %s", file, ok)
	}
	var version int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("backup %s is not a wif database (no schema_migrations): %w", file, err)
	}
	known, err := knownMigrations()
	if err != nil {
		return err
	}
	if version > known {
		return fmt.Errorf("backup %s has schema version %d but this wif knows only versions up to %d: restore it with a newer wif", file, version, known)
	}
	if version == 0 {
		return fmt.Errorf("backup %s has no schema: not a wif database", file)
	}
	return nil
}

func knownMigrations() (int, error) {
	es, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		if v, err := strconv.Atoi(e.Name()[:4]); err == nil && v > n {
			n = v
		}
	}
	return n, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("restore: copy: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("restore: sync: %w", err)
	}
	return out.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // not every filesystem syncs directories
	return nil
}
