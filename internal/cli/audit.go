package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
)

func newAuditCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log of token exchanges",
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
				t := table{headers: []string{"Time", "Result", "ClientId", "Resource", "Subject", "Error"}}
				for _, r := range rs {
					e := r.Error
					if r.ErrorCode != 0 {
						e = fmt.Sprintf("AADSTS%d: %s", r.ErrorCode, r.Error)
					}
					t.rows = append(t.rows, []string{r.Time.UTC().Format(time.RFC3339), r.Result, r.ClientID, r.Resource, r.Subject, e})
				}
				return t
			})
		},
	}
	f := list.Flags()
	f.StringVar(&q.ClientID, "client-id-filter", "", "only exchanges by this client id")
	f.StringVar(&q.Result, "result", "", "only success or failure")
	f.StringVar(&since, "since", "", "only exchanges since this time (RFC 3339) or duration ago (e.g. 1h)")
	f.StringVar(&until, "until", "", "only exchanges until this time (RFC 3339) or duration ago")
	f.IntVar(&q.Max, "top", 100, "at most this many records")
	cmd.AddCommand(list)
	return cmd
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
