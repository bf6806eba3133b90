package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/sts"
)

func newAuditCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log of token exchanges and admin changes",
	}
	af := addAdminFlags(cmd)
	var q admin.AuditQuery
	var since, until string
	list := &cobra.Command{
		Use:   "list",
		Short: "List audited exchanges, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if q.Since, err = parseWhen(since, time.Now()); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.Until, err = parseWhen(until, time.Now()); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			c, tid, err := connect(ctx, af)
			if err != nil {
				return err
			}
			rs, err := c.ListAudit(ctx, tid, q)
			if err != nil {
				return err
			}
			if rs == nil {
				rs = []admin.AuditResource{}
			}
			return af.print(streams.Out, rs, func() table {
				t := table{headers: []string{"Time", "Result", "ClientId", "Resource", "Subject", "Error", "Reason", "CorrelationId"}}
				for _, r := range rs {
					e := r.Error
					if r.ErrorCode != 0 {
						e = fmt.Sprintf("AADSTS%d %s", r.ErrorCode, r.Error)
					}
					res := r.Resource
					if r.ResourceURI != "" {
						res = r.ResourceURI
					}
					result, corr := r.Result, r.CorrelationID
					if r.Count > 1 {
						// An aggregate row: repeated successes of one minute.
						result, corr = fmt.Sprintf("%s ×%d", r.Result, r.Count), "(per minute)"
					}
					t.rows = append(t.rows, []string{r.Time.UTC().Format(time.RFC3339), result, r.ClientID, res, r.Subject, e, r.Reason, corr})
				}
				return t
			})
		},
	}
	f := list.Flags()
	// --client-id here filters, as the README and az users expect; it
	// shadows the login flag of the same name (authenticate with
	// $AZURE_CLIENT_ID), and WIF_CLIENT_ID does not set it.
	f.StringVar(&q.ClientID, "client-id", "", "only exchanges by this client id (here --client-id filters; authenticate with $AZURE_CLIENT_ID)")
	_ = f.SetAnnotation("client-id", noEnvAnnotation, []string{"true"})
	f.StringVar(&q.ClientID, "client-id-filter", "", "only exchanges by this client id")
	_ = f.MarkHidden("client-id-filter")
	f.StringVar(&q.Result, "result", "", "only success or failure")
	f.StringVar(&since, "since", "", "only exchanges since this time (RFC 3339) or duration ago (e.g. 1h)")
	f.StringVar(&until, "until", "", "only exchanges until this time (RFC 3339) or duration ago")
	f.IntVar(&q.Max, "top", 100, "at most this many records")
	cmd.AddCommand(list, newAuditExplain(streams, af), newAuditStale(streams, af))
	return cmd
}

func newAuditExplain(streams Streams, af *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "explain CORRELATION_ID",
		Short: "Explain an exchange: what each check found and, for a refusal, the exact difference",
		Long: `Explain an audited exchange, found by the correlation id its caller was given
(the "Correlation ID" in every error the token endpoint returns): the
assertion's claims, the identity, each federated credential's verdict on
issuer, audience and subject (nearest first), the key and signature
outcome, and the internal cause of a failure. Admins only: it names what
is configured.`,
		Example: `  wif audit explain 6e1b8d2c-0000-4000-8000-000000000001
  wif audit explain 6e1b8d2c-0000-4000-8000-000000000001 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, tid, err := connect(ctx, af)
			if err != nil {
				return err
			}
			rs, err := c.ListAudit(ctx, tid, admin.AuditQuery{CorrelationID: args[0], Max: 20})
			if err != nil {
				return err
			}
			if len(rs) == 0 {
				return fmt.Errorf("no audited exchange of tenant %s has correlation id %q (records are kept --audit-retention; requests naming an unknown tenant are not stored)", tid, args[0])
			}
			if af.output != "table" || af.query != "" {
				return af.print(streams.Out, rs, nil)
			}
			for i, r := range rs {
				if i > 0 {
					fmt.Fprintln(streams.Out)
				}
				writeExplanation(streams.Out, r)
			}
			return nil
		},
	}
}

// writeExplanation renders one audited exchange for a person.
func writeExplanation(w io.Writer, r admin.AuditResource) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	outcome := "token issued"
	if r.Result == "failure" {
		outcome = fmt.Sprintf("refused: AADSTS%d %s", r.ErrorCode, r.Error)
	}
	p("Exchange %s at %s: %s", r.CorrelationID, r.Time.UTC().Format(time.RFC3339), outcome)
	if r.Diagnosis == nil {
		if r.Reason != "" {
			p("  Reason:    %s", r.Reason)
		}
		p("  Client:    %s", r.ClientID)
		if r.CredentialName != "" {
			p("  Credential: %s", r.CredentialName)
		}
		return
	}
	writeDiagnosis(w, r.Diagnosis, r.ClientID)
}

// writeDiagnosis renders what each check of an exchange found.
func writeDiagnosis(w io.Writer, d *sts.Diagnosis, clientID string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if d.Reason != "" {
		p("  Reason:    %s", d.Reason)
	}
	if d.Check != "" {
		p("  Failed:    the %s check", d.Check)
	}
	if c := d.Client; c != nil {
		p("  Client:    %s %q (%s)", c.Kind, c.Name, c.ClientID)
	} else if clientID != "" {
		p("  Client:    %s", clientID)
	}
	if a := d.Assertion; a != nil {
		p("  Assertion: iss %q", a.Issuer)
		p("             sub %q", a.Subject)
		p("             aud %q", strings.Join(a.Audience, `", "`))
		p("             kid %q, iat %s, nbf %s, exp %s", a.KeyID, orDash(a.IssuedAt), orDash(a.NotBefore), orDash(a.Expiry))
	}
	if tc := d.Time; tc != nil {
		p("  Time:      %s (checked at %s)", tc.Result, tc.Now)
	}
	if len(d.Credentials) > 0 {
		p("  Credentials, nearest first:")
		for _, c := range d.Credentials {
			mark := "✗"
			if c.Matched {
				mark = "✓"
			}
			p("    %s %s", mark, c.Name)
			p("        issuer   %-7s %q", verdict(c.IssuerResult), c.Issuer)
			p("        audience %-7s %q", verdict(c.AudienceResult), c.Audience)
			if c.Expression != "" {
				p("        claims   %-7s %s", verdict(c.SubjectResult), c.Expression)
			} else {
				p("        subject  %-7s %q", verdict(c.SubjectResult), c.Subject)
			}
			for _, res := range []string{c.IssuerResult, c.AudienceResult, c.SubjectResult} {
				if res != "match" {
					p("        → %s", res)
				}
			}
		}
		if d.OmittedCredentials > 0 {
			p("    (%d more credentials not shown)", d.OmittedCredentials)
		}
	}
	if k := d.Key; k != nil {
		where := ""
		if k.Issuer != "" {
			where = fmt.Sprintf(" (keys of %q, kid %q)", k.Issuer, k.KeyID)
		}
		p("  Key:       %s%s", k.Result, where)
	}
	if d.Detail != "" {
		p("  Detail:    %s", d.Detail)
	}
}

func verdict(res string) string {
	if res == "match" {
		return "ok"
	}
	return "differs"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration (1h)", s)
	}
	return t, nil
}

func newAuditStale(streams Streams, af *adminFlags) *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "stale",
		Short: "List credentials unused for --days and trusted issuers that have not answered for a day",
		Long: `List what the tenant trusts but nothing uses: federated credentials that no
exchange matched in the last --days days (oldest use first; "never" for
none since wif began recording use), and issuers whose discovery document
or keys the token service has failed to fetch for at least a day — the
credentials that trust them cannot be used. Credentials made inside the
window and not used yet are counted, not listed.

Last use is recorded by the token service in batches (every 10 s).`,
		Example: `  wif audit stale
  wif audit stale --days 90 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if days < 1 || days > admin.MaxStaleDays {
				return fmt.Errorf("--days must be from 1 to %d, not %d", admin.MaxStaleDays, days)
			}
			c, tid, err := connect(ctx, af)
			if err != nil {
				return err
			}
			rep, err := c.StaleCredentials(ctx, tid, days)
			if err != nil {
				return err
			}
			if af.output != "table" || af.query != "" {
				return af.print(streams.Out, rep, nil)
			}
			return writeStale(streams.Out, rep)
		},
	}
	cmd.Flags().IntVar(&days, "days", admin.DefaultStaleDays, "report credentials no exchange matched in this many days")
	return cmd
}

// writeStale renders a stale report for a person.
func writeStale(w io.Writer, r *admin.StaleReport) error {
	var b strings.Builder
	since := r.Since.UTC().Format(time.RFC3339)
	if len(r.Credentials) == 0 {
		fmt.Fprintf(&b, "Every credential was used in the last %d days (since %s).\n", r.Days, since)
	} else {
		fmt.Fprintf(&b, "Credentials unused in the last %d days (since %s): %d\n", r.Days, since, len(r.Credentials))
		t := table{headers: []string{"Kind", "Parent", "Name", "Issuer", "Subject", "Created", "LastUsed"}}
		for _, c := range r.Credentials {
			t.rows = append(t.rows, []string{c.Kind, c.Parent, c.Name, c.Issuer, c.Subject, c.CreatedAt.UTC().Format(time.RFC3339), lastUsedText(c.LastUsed)})
		}
		if err := writeTable(&b, t); err != nil {
			return err
		}
	}
	if r.Young > 0 {
		fmt.Fprintf(&b, "(%d made in the window and not used yet: not listed.)\n", r.Young)
	}
	if len(r.Issuers) == 0 {
		b.WriteString("Every trusted issuer answered in the last day.\n")
	} else {
		fmt.Fprintf(&b, "\nIssuers that have not answered for a day: %d\n", len(r.Issuers))
		t := table{headers: []string{"Issuer", "FailingSince", "LastSuccess", "Credentials", "LastError"}}
		for _, i := range r.Issuers {
			last := "never"
			if i.LastSuccess != nil {
				last = i.LastSuccess.UTC().Format(time.RFC3339)
			}
			t.rows = append(t.rows, []string{i.Issuer, i.FailingSince.UTC().Format(time.RFC3339), last, fmt.Sprint(i.Credentials), i.LastError})
		}
		if err := writeTable(&b, t); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
