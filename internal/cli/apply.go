package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
	"github.com/wif-project/wif/internal/tlsutil"
)

func newApplyCommand(streams Streams) *cobra.Command {
	var files []string
	var dryRun, prune, failOnBreak bool
	var replay string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "Make the directory match a directory document (idempotent; deletes only with --prune)",
		Long: `Apply a directory document (see 'wif export'): create what is missing, update
what differs, and with --prune delete what the document does not mention.
Objects are matched by natural key, so a document without ids applies
idempotently. --dry-run prints the changes without making them.

-f may be repeated, and may name a directory: every *.yaml, *.yml and *.json
file under it (recursively, in path order) is read, and together they are one
document — a tenant may appear in many files, an object in only one (wif
export --split-by resource-group --out DIR writes such a directory). With
--prune, what none of the files mentions is deleted.

--dry-run --replay 24h also replays the exchanges audited in the last 24
hours (or 7d, ...) against the directory the document would make, and lists
those whose outcome would change: exchanges that succeed now and would be
refused (a subject's letter case, an issuer, an audience, a deleted
credential), refused ones that would succeed, and tokens whose roles would
change. --fail-on-break exits 1 when some exchange would break (for CI).`,
		Args: cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		// Parse every file here first: a typo is reported with its file's
		// name, line and the field's path before anything is sent.
		docs, err := readDocuments(streams, files)
		if err != nil {
			return err
		}
		doc, err := apply.Merge(docs)
		if err != nil {
			return err
		}
		data, err := doc.Marshal()
		if err != nil {
			return err
		}
		c, err := af.client(ctx)
		if err != nil {
			return err
		}
		if replay != "" && !dryRun {
			return errors.New("--replay needs --dry-run: it shows what a change would do before it is made")
		}
		if failOnBreak && replay == "" {
			return errors.New("--fail-on-break needs --dry-run --replay WINDOW")
		}
		res, err := c.Apply(ctx, data, admin.ApplyOptions{DryRun: dryRun, Prune: prune, Replay: replay})
		if err != nil {
			return err
		}
		if af.output == "table" && af.query == "" {
			_, err := io.WriteString(streams.Out, res.Summary)
			if err == nil && res.Replay != nil {
				err = printReplay(streams.Out, res.Replay)
			}
			if err == nil && dryRun && res.Applied == 0 && len(res.Changes) > 0 {
				_, err = fmt.Fprintln(streams.ErrOut, "(dry run: nothing was changed)")
			}
			if err != nil {
				return err
			}
		} else if err := af.print(streams.Out, res, nil); err != nil {
			return err
		}
		if failOnBreak && res.Replay != nil && len(res.Replay.Breaks) > 0 {
			return errReplayBreaks
		}
		return nil
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "a directory document (YAML or JSON), a directory of them (read recursively), or - for standard input; repeatable")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes without making them")
	cmd.Flags().StringVar(&replay, "replay", "", "with --dry-run: replay the exchanges audited in this window (24h, 7d) against the new directory and list those whose outcome would change")
	cmd.Flags().BoolVar(&failOnBreak, "fail-on-break", false, "with --replay: exit 1 when some audited exchange that succeeds now would be refused")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete objects (even whole tenants) the document does not mention")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func newExportCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print the whole directory as a document for 'wif apply -f' (or write it split by tenant or resource group)",
		Args:  cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	af.output = "yaml"
	cmd.PersistentFlags().Lookup("output").DefValue = "yaml"
	var splitBy, outDir string
	cmd.Flags().StringVar(&splitBy, "split-by", "", "write one file per tenant or per resource group (tenant, resource-group) under --out, for wif apply -f DIR")
	cmd.Flags().StringVar(&outDir, "out", "", "with --split-by: the directory to write the files to (created; files of the same names are replaced)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if (splitBy == "") != (outDir == "") {
			return errors.New("--split-by and --out go together: wif export --split-by resource-group --out DIR")
		}
		c, err := af.client(ctx)
		if err != nil {
			return err
		}
		y, err := c.Export(ctx)
		if err != nil {
			return err
		}
		if splitBy != "" {
			doc, err := apply.Parse(bytesReader(y))
			if err != nil {
				return fmt.Errorf("the server's export does not parse: %w", err)
			}
			parts, err := apply.Split(doc, splitBy)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(parts))
			for n := range parts {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				data, err := parts[n].Marshal()
				if err != nil {
					return err
				}
				p := filepath.Join(outDir, filepath.FromSlash(n))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
				}
				if err := tlsutil.WriteFileAtomic(p, data, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(streams.Out, "wrote %d files to %s (apply them with: wif apply -f %s)\n", len(names), outDir, outDir)
			return nil
		}
		if af.output == "yaml" && af.query == "" {
			_, err = streams.Out.Write(y)
			return err
		}
		doc, err := apply.Parse(bytesReader(y))
		if err != nil {
			return fmt.Errorf("the server's export does not parse: %w", err)
		}
		return af.print(streams.Out, doc, func() table { return documentTable(doc) })
	}
	return cmd
}

// documentTable lists a directory document's objects, one row each (wif
// export -o table).
func documentTable(doc *apply.Document) table {
	t := table{headers: []string{"Tenant", "Kind", "Name", "Id", "Detail"}}
	for _, tn := range doc.Tenants {
		t.rows = append(t.rows, []string{tn.ID, "tenant", tn.DisplayName, tn.ID, ""})
		for _, a := range tn.Applications {
			t.rows = append(t.rows, []string{tn.ID, "application", a.DisplayName, a.AppID, strings.Join(a.IdentifierURIs, ",")})
			for _, f := range a.FederatedCredentials {
				t.rows = append(t.rows, []string{tn.ID, "federated credential", a.DisplayName + "/" + f.Name, "", f.Issuer + " " + f.Subject})
			}
		}
		for _, m := range tn.ManagedIdentities {
			t.rows = append(t.rows, []string{tn.ID, "managed identity", m.ResourceGroup + "/" + m.Name, m.ClientID, ""})
			for _, f := range m.FederatedCredentials {
				t.rows = append(t.rows, []string{tn.ID, "federated credential", m.Name + "/" + f.Name, "", f.Issuer + " " + f.Subject})
			}
		}
		for _, g := range tn.AppRoleAssignments {
			t.rows = append(t.rows, []string{tn.ID, "app role assignment", g.Principal + " → " + g.Resource, "", g.Role})
		}
	}
	return t
}

// errReplayBreaks is --fail-on-break's failure: the report says which.
var errReplayBreaks = errors.New("the replay found exchanges the change would break")

// printReplay prints a replay report for a person: what would break first.
func printReplay(w io.Writer, r *admin.ReplayReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nReplay of the exchanges audited since %s (%s): %d records, %d distinct exchanges the directory decides",
		r.Since.UTC().Format(time.RFC3339), r.Window, r.Scanned, r.Distinct)
	if r.Truncated {
		fmt.Fprintf(&b, " (truncated at %d records: the newest were replayed)", r.Scanned)
	}
	b.WriteString(".\n")
	section := func(title string, list []admin.ReplayChange, mark string) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (%d):\n", title, len(list))
		for _, c := range list {
			who := c.Client
			if who == "" {
				who = "client"
			}
			fmt.Fprintf(&b, "  %s %s %s: iss %q sub %q", mark, who, c.ClientID, c.Issuer, c.Subject)
			if len(c.Audience) > 0 {
				fmt.Fprintf(&b, " aud %q", strings.Join(c.Audience, ","))
			}
			fmt.Fprintf(&b, "\n      %d× in the window, last %s (correlation id %s)\n", c.Count, c.LastSeen.UTC().Format(time.RFC3339), c.CorrelationID)
			fmt.Fprintf(&b, "      now:   %s\n      after: %s\n", outcomeText(c.Before), outcomeText(c.After))
			if c.Uncertain != "" {
				fmt.Fprintf(&b, "      cannot tell: %s\n", c.Uncertain)
			}
		}
	}
	section("Would break (succeed now, refused after)", r.Breaks, "✗")
	section("Would be fixed (refused now, succeed after)", r.Fixes, "✓")
	section("Would change roles", r.RoleChanges, "~")
	section("Cannot tell from the audit log", r.Uncertain, "?")
	if len(r.Breaks)+len(r.Fixes)+len(r.RoleChanges)+len(r.Uncertain) == 0 {
		b.WriteString("No audited exchange would change outcome.\n")
	}
	if r.Omitted > 0 {
		fmt.Fprintf(&b, "(%d more not listed; -o json has the first 1,000 of each list)\n", r.Omitted)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func outcomeText(o sts.Outcome) string {
	if o.Result == store.AuditSuccess {
		s := "success via credential '" + o.Credential + "'"
		if len(o.Roles) > 0 {
			s += ", roles " + strings.Join(o.Roles, ",")
		}
		return s
	}
	s := fmt.Sprintf("refused, AADSTS%d", o.Code)
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	return s
}

// readDocuments reads and parses every document the -f values name: files,
// directories (every *.yaml, *.yml, *.json under them, in path order) and
// "-" (standard input, once).
func readDocuments(streams Streams, args []string) ([]apply.NamedDocument, error) {
	var docs []apply.NamedDocument
	read := func(name string, r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		doc, err := apply.ParseNamed(name, data)
		if err != nil {
			var ves directory.ValidationErrors
			if errors.As(err, &ves) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return err
		}
		docs = append(docs, apply.NamedDocument{Name: name, Doc: doc})
		return nil
	}
	stdin := false
	for _, a := range args {
		if a == "-" {
			if stdin {
				return nil, errors.New("-f - is given twice: standard input can be read once")
			}
			stdin = true
			if err := read("standard input", streams.In); err != nil {
				return nil, err
			}
			continue
		}
		info, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("open directory document: %w", err)
		}
		if !info.IsDir() {
			f, err := os.Open(a)
			if err != nil {
				return nil, fmt.Errorf("open directory document: %w", err)
			}
			err = read(a, f)
			f.Close()
			if err != nil {
				return nil, err
			}
			continue
		}
		var paths []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != a && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // .git and the like
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					paths = append(paths, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", a, err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("directory %s holds no *.yaml, *.yml or *.json file", a)
		}
		sort.Strings(paths)
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				return nil, fmt.Errorf("open directory document: %w", err)
			}
			err = read(p, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return docs, nil
}
