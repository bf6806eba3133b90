package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
)

func newApplyCommand(streams Streams) *cobra.Command {
	var file string
	var dryRun, prune, failOnBreak bool
	var replay string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|-",
		Short: "Make the directory match a directory document (idempotent; deletes only with --prune)",
		Long: `Apply a directory document (see 'wif export'): create what is missing, update
what differs, and with --prune delete what the document does not mention.
Objects are matched by natural key, so a document without ids applies
idempotently. --dry-run prints the changes without making them.

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
		var r io.Reader = streams.In
		name := "standard input"
		if file != "-" {
			name = file
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("open directory document: %w", err)
			}
			defer f.Close()
			r = f
		}
		data, err := io.ReadAll(io.LimitReader(r, apply.MaxDocumentBytes+1))
		if err != nil {
			return fmt.Errorf("read directory document: %w", err)
		}
		// Parse here first: a typo is reported with the file's name, line
		// and the field's path before anything is sent.
		if _, err := apply.ParseNamed(name, data); err != nil {
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
	cmd.Flags().StringVarP(&file, "file", "f", "", "the directory document (YAML or JSON); - reads standard input")
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
		Short: "Print the whole directory as a document for 'wif apply -f'",
		Args:  cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	af.output = "yaml"
	cmd.PersistentFlags().Lookup("output").DefValue = "yaml"
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, err := af.client(ctx)
		if err != nil {
			return err
		}
		y, err := c.Export(ctx)
		if err != nil {
			return err
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
