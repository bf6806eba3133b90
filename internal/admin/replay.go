package admin

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/sts"
)

// Limits of a replay.
const (
	// MaxReplayWindow is the longest replay (the audit log keeps 30 days by
	// default).
	MaxReplayWindow = 31 * 24 * time.Hour
	// MaxReplayRecords bounds the audit records one replay reads; past it
	// the report says it is truncated.
	MaxReplayRecords = 1_000_000
	// maxReplayListed bounds the exchanges a report lists.
	maxReplayListed = 1000
)

// ReplayReport is what a document would change for the exchanges audited
// in the window: each distinct exchange (tenant, client, issuer, subject,
// audience, resource) whose outcome differs between the current and the
// proposed directory.
type ReplayReport struct {
	Window string    `json:"window"`
	Since  time.Time `json:"since"`
	// Scanned counts the audit records read; Distinct the distinct
	// exchanges among those whose outcome the directory decides.
	Scanned  int `json:"scanned"`
	Distinct int `json:"distinct"`
	// Truncated: the window held more than MaxReplayRecords records; the
	// newest were replayed.
	Truncated bool `json:"truncated,omitempty"`
	// Breaks lists exchanges that succeed now and would be refused; Fixes
	// those refused now that would succeed; RoleChanges successes whose
	// token would carry other roles.
	Breaks      []ReplayChange `json:"breaks"`
	Fixes       []ReplayChange `json:"fixes"`
	RoleChanges []ReplayChange `json:"roleChanges"`
	// Uncertain lists exchanges whose outcome in either directory rests on
	// claims the audit log does not keep (a claims expression).
	Uncertain []ReplayChange `json:"uncertain,omitempty"`
	// Omitted counts changes not listed (past 1,000 per list).
	Omitted int `json:"omitted,omitempty"`
}

// ReplayChange is one distinct exchange and what each directory decides.
type ReplayChange struct {
	TenantID string `json:"tenantId"`
	ClientID string `json:"clientId"`
	// Client names the client: managed identity "name" or application
	// "displayName" ("" when it exists in neither directory).
	Client   string   `json:"client,omitempty"`
	Issuer   string   `json:"issuer"`
	Subject  string   `json:"subject"`
	Audience []string `json:"audience,omitempty"`
	Resource string   `json:"resource,omitempty"`
	// Count is how many audited exchanges it stands for; LastSeen and
	// CorrelationID are those of the newest.
	Count         int         `json:"count"`
	LastSeen      time.Time   `json:"lastSeen"`
	CorrelationID string      `json:"correlationId"`
	Before        sts.Outcome `json:"before"`
	After         sts.Outcome `json:"after"`
	Uncertain     string      `json:"uncertain,omitempty"`
}

// parseWindow reads a replay window: a Go duration (24h, 90m) or a number
// of days (7d).
func parseWindow(v string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("not a number of days")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("not a duration")
		}
	}
	if d <= 0 || d > MaxReplayWindow {
		return 0, fmt.Errorf("out of range")
	}
	return d, nil
}

type replayKey struct {
	tenant, client, iss, sub, aud, resource string
}

type replayGroup struct {
	x      sts.Exchange
	count  int
	last   time.Time
	corrID string
}

// replay applies doc to a scratch copy of the current directory and
// replays the window's audited exchanges against both. The caller must be
// allowed to read the audit log of every tenant it replays.
func (h *Handler) replay(r *http.Request, doc *apply.Document, opts apply.Options, label string, window time.Duration) (*ReplayReport, error) {
	ctx := r.Context()
	before, err := h.cfg.Store.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	scratch, err := memory.FromSnapshot(ctx, before)
	if err != nil {
		return nil, err
	}
	defer scratch.Close()
	opts.DryRun = false
	if _, err := apply.Apply(ctx, scratch, doc, opts); err != nil {
		return nil, err
	}
	after, err := scratch.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	rp, err := sts.NewReplayer(before, after)
	if err != nil {
		return nil, err
	}
	since := time.Now().Add(-window).UTC()
	rep := &ReplayReport{Window: label, Since: since, Breaks: []ReplayChange{}, Fixes: []ReplayChange{}, RoleChanges: []ReplayChange{}}
	groups := map[replayKey]*replayGroup{}
scan:
	for _, t := range before.Tenants {
		if _, err := h.cfg.Authorizer.Authorize(r, Operation{Scope: ScopeAudit, TenantID: t.ID}); err != nil {
			return nil, fmt.Errorf("replaying needs to read the audit log of tenant %s: %w", t.ID, err)
		}
		f := store.AuditFilter{TenantID: t.ID, Since: since, Limit: 1000}
		for {
			pg, err := h.cfg.Store.ListAudit(ctx, f)
			if err != nil {
				return nil, err
			}
			for _, rec := range pg.Records {
				rep.Scanned++
				x, ok := sts.ExchangeOf(rec)
				if !ok {
					continue
				}
				k := replayKey{strings.ToLower(x.TenantID), strings.ToLower(x.ClientID), x.Issuer, x.Subject, strings.Join(x.Audience, "\n"), strings.ToLower(x.Resource)}
				g := groups[k]
				if g == nil {
					g = &replayGroup{x: x}
					groups[k] = g
				}
				// An aggregate row stands for Count exchanges and has no
				// correlation id: the newest full record names the group.
				g.count += max(rec.Count, 1)
				if rec.Time.After(g.last) {
					g.last = rec.Time
					if rec.CorrelationID != "" {
						g.corrID = rec.CorrelationID
					}
				}
				if g.corrID == "" {
					g.corrID = rec.CorrelationID
				}
				if rep.Scanned >= MaxReplayRecords {
					rep.Truncated = true
					break scan
				}
			}
			if pg.NextCursor == "" {
				break
			}
			f.After = pg.NextCursor
		}
	}
	rep.Distinct = len(groups)
	names := map[string]string{}
	for _, snap := range []store.Snapshot{after, before} {
		for _, m := range snap.ManagedIdentities {
			names[strings.ToLower(m.ClientID)] = fmt.Sprintf("managed identity %q", m.Name)
		}
		for _, a := range snap.Applications {
			names[strings.ToLower(a.AppID)] = fmt.Sprintf("application %q", a.DisplayName)
		}
	}
	for _, g := range groups {
		b, a, uncertain := rp.Replay(g.x)
		c := ReplayChange{TenantID: g.x.TenantID, ClientID: g.x.ClientID, Client: names[strings.ToLower(g.x.ClientID)], Issuer: g.x.Issuer, Subject: g.x.Subject, Audience: g.x.Audience,
			Resource: g.x.Resource, Count: g.count, LastSeen: g.last, CorrelationID: g.corrID, Before: b, After: a, Uncertain: uncertain}
		switch {
		case uncertain != "":
			rep.Uncertain = append(rep.Uncertain, c)
		case !sts.Changed(b, a):
		case b.Result == store.AuditSuccess && a.Result != store.AuditSuccess:
			rep.Breaks = append(rep.Breaks, c)
		case b.Result != store.AuditSuccess && a.Result == store.AuditSuccess:
			rep.Fixes = append(rep.Fixes, c)
		default:
			rep.RoleChanges = append(rep.RoleChanges, c)
		}
	}
	for _, l := range []*[]ReplayChange{&rep.Breaks, &rep.Fixes, &rep.RoleChanges, &rep.Uncertain} {
		slices.SortFunc(*l, func(a, b ReplayChange) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), b.LastSeen.Compare(a.LastSeen), strings.Compare(a.ClientID, b.ClientID), strings.Compare(a.Subject, b.Subject))
		})
		if len(*l) > maxReplayListed {
			rep.Omitted += len(*l) - maxReplayListed
			*l = (*l)[:maxReplayListed]
		}
	}
	return rep, nil
}
