package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/store/sqlite"
	"github.com/wif-project/wif/internal/store/stores"
)

// pgDumpHint is how PostgreSQL stores are backed up: with the server's own
// tools, which are consistent while wif serves.
const pgDumpHint = "a PostgreSQL store is backed up with PostgreSQL's tools: pg_dump --format=custom --file wif.dump DBURL (consistent while wif serves), restored with pg_restore --clean --dbname DBURL wif.dump; keep the key-encryption key (--key-encryption-key-file) with the dump: the signing keys in it are sealed with it"

func newBackupCommand(streams Streams) *cobra.Command {
	var storeURL, out string
	cmd := &cobra.Command{
		Use:   "backup --store sqlite:PATH --out FILE",
		Short: "Copy the directory, keys and audit log consistently, while wif serves (SQLite; PostgreSQL: pg_dump)",
		Long: `Write a consistent, self-contained copy of a SQLite store while wif may be
serving from it (SQLite's VACUUM INTO reads one snapshot; exchanges and
admin writes go on). The copy holds the signing keys sealed with the
key-encryption key: keep --key-encryption-key-file with it, or the keys
cannot be opened after a restore. Restore with 'wif restore'.

` + pgDumpHint + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kind, path, err := stores.Parse(storeURL)
			if err != nil {
				return err
			}
			switch kind {
			case stores.Postgres:
				return errors.New(pgDumpHint)
			case stores.Memory:
				return errors.New("an in-memory store has nothing to back up: its state goes with the process (wif export saves the directory)")
			}
			if err := sqlite.Backup(cmd.Context(), path, out); err != nil {
				return err
			}
			_, err = fmt.Fprintf(streams.Out, "backed up %s to %s (keep the key-encryption key with it)\n", path, out)
			return err
		},
	}
	cmd.Flags().StringVar(&storeURL, "store", "", "the store to back up (sqlite:PATH)")
	cmd.Flags().StringVar(&out, "out", "", "the backup file to write (must not exist)")
	_ = cmd.MarkFlagRequired("store")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newRestoreCommand(streams Streams) *cobra.Command {
	var storeURL, from string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore --from FILE --store sqlite:PATH",
		Short: "Put a backup in place of a SQLite store (stop wif first)",
		Long: `Check a backup made by 'wif backup' (SQLite's integrity check, a schema this
wif knows) and put it in place of the store's file. Stop wif serve first; an
existing database is replaced only with --force. Start wif with the same
key-encryption key as when the backup was taken. A backup from an older wif
is upgraded when the store is next opened.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kind, path, err := stores.Parse(storeURL)
			if err != nil {
				return err
			}
			if kind != stores.SQLite {
				return errors.New("restore writes SQLite stores; " + pgDumpHint)
			}
			if err := sqlite.Restore(cmd.Context(), from, path, force); err != nil {
				return err
			}
			_, err = fmt.Fprintf(streams.Out, "restored %s from %s\n", path, from)
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup file")
	cmd.Flags().StringVar(&storeURL, "store", "", "the store to restore into (sqlite:PATH)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing database")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("store")
	return cmd
}
