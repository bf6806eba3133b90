package sts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// collector is an OTLP/HTTP logs receiver on loopback TLS: it keeps every
// log record it is sent, or answers status when set.
type collector struct {
	mu      sync.Mutex
	records []map[string]any
	status  int
	posts   int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts++
	if r.Method != "POST" || r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "not an OTLP/HTTP JSON logs export", 400)
		return
	}
	if c.status != 0 {
		w.WriteHeader(c.status)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var doc struct {
		ResourceLogs []struct {
			Resource struct {
				Attributes []map[string]any `json:"attributes"`
			} `json:"resource"`
			ScopeLogs []struct {
				Scope      struct{ Name string } `json:"scope"`
				LogRecords []map[string]any      `json:"logRecords"`
			} `json:"scopeLogs"`
		} `json:"resourceLogs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.ResourceLogs) != 1 || len(doc.ResourceLogs[0].ScopeLogs) != 1 || doc.ResourceLogs[0].ScopeLogs[0].Scope.Name != "wif.audit" {
		http.Error(w, "bad document", 400)
		return
	}
	c.records = append(c.records, doc.ResourceLogs[0].ScopeLogs[0].LogRecords...)
}

func attr(rec map[string]any, key string) string {
	attrs, _ := rec["attributes"].([]any)
	for _, a := range attrs {
		m := a.(map[string]any)
		if m["key"] == key {
			v := m["value"].(map[string]any)
			if s, ok := v["stringValue"].(string); ok {
				return s
			}
			if s, ok := v["intValue"].(string); ok {
				return s
			}
		}
	}
	return ""
}

// TestAuditOTLPSink: every exchange reaches an OTLP/HTTP logs collector
// whole — refusals at WARN with their error code, the record as the body —
// and a collector that refuses costs no exchange, only counted drops.
func TestAuditOTLPSink(t *testing.T) {
	col := &collector{}
	srv := httptest.NewTLSServer(col)
	defer srv.Close()
	env := wiftest.Start(t, wiftest.WithAuditOTLP(srv.URL+"/v1/logs", srv.Client()))
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	for range 3 {
		if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("payments"), directory.DefaultAudience, time.Hour)); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	}
	if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("intruder"), directory.DefaultAudience, time.Hour)); r.Status != 401 {
		t.Fatalf("refusal: %d", r.Status)
	}
	// The sink sends within its flush interval (1 s); wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		col.mu.Lock()
		n := len(col.records)
		col.mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector got %d records, want 4", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	col.mu.Lock()
	var ok, refused int
	for _, rec := range col.records {
		if attr(rec, "wif.client_id") != strings.ToLower(mi.ClientID) {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(rec["body"].(map[string]any)["stringValue"].(string)), &body); err != nil || body["correlationId"] != attr(rec, "wif.correlation_id") || body["correlationId"] == "" {
			t.Errorf("body %v: %v", rec["body"], err)
		}
		switch {
		case attr(rec, "wif.audit.result") == "success" && rec["severityText"] == "INFO" && rec["severityNumber"] == 9.0:
			ok++
		case attr(rec, "wif.audit.result") == "failure" && rec["severityText"] == "WARN" && attr(rec, "wif.audit.error_code") == "700213":
			refused++
		}
		if rec["timeUnixNano"] == "" {
			t.Errorf("no time: %v", rec)
		}
	}
	col.status = http.StatusServiceUnavailable
	col.mu.Unlock()
	if ok != 3 || refused != 1 {
		t.Fatalf("collector: %d successes, %d refusals (every exchange whole, aggregation or not)", ok, refused)
	}

	// The collector fails: exchanges go on, the records are dropped and
	// counted (the store still has them).
	if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("payments"), directory.DefaultAudience, time.Hour)); r.Status != 200 {
		t.Fatalf("with the collector down: %d", r.Status)
	}
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n, err := testutil.GatherAndCount(env.Server.Registry, "wif_sts_audit_sink_dropped_total")
		if err != nil {
			t.Fatal(err)
		}
		mfs, _ := env.Server.Registry.Gather()
		dropped := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "wif_sts_audit_sink_dropped_total" {
				dropped = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if n == 1 && dropped >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dropped %v after the collector failed", dropped)
		}
	}
}
