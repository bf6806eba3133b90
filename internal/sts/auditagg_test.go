package sts_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/wiftest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// The audit log fits the rate: refusals and the first success of each
// (client, credential, subject, audience) in an hour are full records;
// repeated successes are one row per minute with a count; the sink gets
// every exchange whole.
func TestAuditAggregatesRepeatedSuccesses(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Minute).Add(5 * time.Second)
	clock := &testClock{t: t0}
	st := memory.New()
	var sink lockedBuffer
	env := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithClock(clock.Now), wiftest.WithAuditSink(&sink))
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	sub := wiftest.Subject("payments")
	ok := func() {
		t.Helper()
		if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, sub, directory.DefaultAudience, 3*time.Hour)); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	}
	for range 5 {
		ok()
	}
	clock.set(t0.Add(time.Minute))
	for range 3 {
		ok()
	}
	if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("intruder"), directory.DefaultAudience, time.Hour)); r.Status != 401 {
		t.Fatalf("refusal: %d", r.Status)
	}
	clock.set(t0.Add(61 * time.Minute)) // a new hour: the next success is a full record again
	ok()
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: env.TenantID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var full, agg []store.AuditRecord
	total := 0
	for _, r := range page.Records {
		if r.ClientID != strings.ToLower(mi.ClientID) {
			continue
		}
		total += r.Count
		if r.Count > 1 || r.CorrelationID == "" {
			agg = append(agg, r)
		} else {
			full = append(full, r)
		}
	}
	if total != 10 {
		t.Fatalf("the records stand for %d exchanges, want 10", total)
	}
	// Full: the first success, the refusal, the first success of the new hour.
	if len(full) != 3 {
		t.Fatalf("%d full records, want 3: %+v", len(full), full)
	}
	counts := map[time.Time]int{}
	for _, r := range agg {
		counts[r.Time] = r.Count
		if r.Subject != sub || r.CredentialName == "" || r.Issuer != env.Issuer.URL || len(r.Audience) != 1 {
			t.Errorf("an aggregate row lost what a replay needs: %+v", r)
		}
	}
	if counts[t0.Truncate(time.Minute)] != 4 || counts[t0.Add(time.Minute).Truncate(time.Minute)] != 3 || len(agg) != 2 {
		t.Fatalf("aggregate rows by minute: %v", counts)
	}
	// The sink had every exchange, whole, with its correlation id.
	var mine int
	for _, l := range sink.lines() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("sink line is not JSON: %q", l)
		}
		if rec["clientId"] == strings.ToLower(mi.ClientID) {
			mine++
			if rec["correlationId"] == "" || rec["result"] == nil {
				t.Errorf("sink record: %v", rec)
			}
		}
	}
	if mine != 10 {
		t.Fatalf("the sink got %d records of the identity, want 10", mine)
	}
}
