package sts

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// auditAggregator keeps the audit log to the rate: every refusal is a
// full record, and so is the first success of each (tenant, client,
// credential, subject, audience) within firstSeenWindow; repeated
// successes are counted per the same key and minute and written as one
// record (Count) once the minute is over. It runs in the audit writer's
// goroutine only: no locks.
type auditAggregator struct {
	firstSeen map[aggKey]time.Time // key → when its full record was written
	pending   map[minuteKey]*store.AuditRecord
	maxKeys   int
	window    time.Duration
}

const (
	// firstSeenWindow is how long a key's first success stays the only
	// full record of its kind.
	firstSeenWindow = time.Hour
	// maxAggregationKeys bounds the aggregator's memory; past it the
	// first-seen map starts again (more full records, never fewer).
	maxAggregationKeys = 100_000
)

func newAuditAggregator() *auditAggregator {
	return &auditAggregator{firstSeen: map[aggKey]time.Time{}, pending: map[minuteKey]*store.AuditRecord{}, maxKeys: maxAggregationKeys, window: firstSeenWindow}
}

// aggKey is what makes successes "the same": a comparable struct, so
// building it allocates nothing for the usual single audience.
type aggKey struct {
	tenant, client, credential, resource, issuer, subject, audience string
}

type minuteKey struct {
	aggKey
	minute int64 // Unix seconds of the minute's start
}

func keyOf(r *store.AuditRecord) aggKey {
	aud := ""
	switch len(r.Audience) {
	case 0:
	case 1:
		aud = r.Audience[0]
	default:
		aud = strings.Join(r.Audience, " ")
	}
	return aggKey{r.TenantID, strings.ToLower(r.ClientID), r.CredentialName, r.Resource, r.Issuer, r.Subject, aud}
}

// absorb takes a record: false means write it as it is (a refusal, or the
// first success of its key in the window); true means it is counted in
// an aggregate row.
func (g *auditAggregator) absorb(r store.AuditRecord) bool {
	if r.Result != store.AuditSuccess || r.Count > 1 || r.GrantType == store.AuditAdminChange {
		return false
	}
	k := keyOf(&r)
	if t, ok := g.firstSeen[k]; !ok || r.Time.Sub(t) >= g.window || r.Time.Before(t) {
		if len(g.firstSeen) >= g.maxKeys {
			g.firstSeen = map[aggKey]time.Time{}
		}
		g.firstSeen[k] = r.Time
		return false
	}
	minute := r.Time.UTC().Truncate(time.Minute)
	pk := minuteKey{k, minute.Unix()}
	if p := g.pending[pk]; p != nil {
		p.Count++
		return true
	}
	agg := store.AuditRecord{ID: directory.NewID(), Time: minute, TenantID: r.TenantID, ClientID: r.ClientID, CredentialName: r.CredentialName,
		GrantType: r.GrantType, Resource: r.Resource, Issuer: r.Issuer, Subject: r.Subject, Audience: r.Audience,
		Result: store.AuditSuccess, Count: 1}
	g.pending[pk] = &agg
	return true
}

// due returns the aggregate rows of minutes that ended before now (all of
// them with all set), and forgets them.
func (g *auditAggregator) due(now time.Time, all bool) []store.AuditRecord {
	var out []store.AuditRecord
	cur := now.UTC().Truncate(time.Minute)
	for k, p := range g.pending {
		if all || p.Time.Before(cur) {
			out = append(out, *p)
			delete(g.pending, k)
		}
	}
	return out
}

// jsonLines writes each record as one JSON line (no token or assertion is
// in a record: only the jti's hash).
type jsonLines struct {
	w      io.Writer
	log    *slog.Logger
	failed bool
}

// Write implements recordSink.
func (j *jsonLines) Write(r store.AuditRecord) {
	b, err := json.Marshal(sinkRecord(r))
	if err == nil {
		_, err = j.w.Write(append(b, '\n'))
	}
	if err != nil && !j.failed {
		j.failed = true
		j.log.Error("writing an audit record to the audit sink failed; later failures are not logged", "error", err)
	}
}

// sinkRecord is an audit record as the sink writes it: the admin API's
// field names.
func sinkRecord(r store.AuditRecord) map[string]any {
	out := map[string]any{"id": r.ID, "time": r.Time.UTC().Format(time.RFC3339Nano), "tenantId": r.TenantID, "clientId": r.ClientID,
		"result": r.Result, "grantType": r.GrantType, "resource": r.Resource, "issuer": r.Issuer, "subject": r.Subject,
		"audience": r.Audience, "correlationId": r.CorrelationID, "remoteAddr": r.RemoteAddr}
	for k, v := range map[string]string{"credentialName": r.CredentialName, "jtiHash": r.JTIHash, "error": r.Error, "reason": r.Reason} {
		if v != "" {
			out[k] = v
		}
	}
	if r.ErrorCode != 0 {
		out["errorCode"] = r.ErrorCode
	}
	if r.Diagnosis != "" {
		out["diagnosis"] = json.RawMessage(r.Diagnosis)
	}
	return out
}
