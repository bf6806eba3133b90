package sts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/store"
)

// OTLP sink limits.
const (
	otlpQueue         = 10_000
	otlpBatch         = 512
	otlpFlushInterval = time.Second
	otlpTimeout       = 10 * time.Second
)

// otlpSink streams every audit record whole as an OTLP log record to an
// OTLP/HTTP logs endpoint (JSON encoding: POST .../v1/logs), batched off
// the request path. A collector that is down or slow costs no exchange:
// records that do not fit the queue, or whose batch the collector
// refuses, are dropped and counted (wif_sts_audit_sink_dropped_total) —
// the store keeps its own record of each.
type otlpSink struct {
	url     string
	client  *http.Client
	log     *slog.Logger
	queue   chan store.AuditRecord
	dropped prometheus.Counter
	service string

	wg      sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	failing bool // the last POST failed (log the next failure only after a success)
}

func newOTLPSink(url string, client *http.Client, log *slog.Logger, reg prometheus.Registerer) *otlpSink {
	if client == nil {
		client = &http.Client{Timeout: otlpTimeout}
	}
	s := &otlpSink{url: url, client: client, log: log, queue: make(chan store.AuditRecord, otlpQueue), stop: make(chan struct{}), service: "wif",
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "wif_sts_audit_sink_dropped_total", Help: "Audit records the OTLP audit sink dropped: its queue was full or the collector refused or did not answer their batch."})}
	if reg != nil {
		reg.MustRegister(s.dropped)
	}
	s.wg.Add(1)
	go s.run()
	return s
}

// Write implements recordSink: it never blocks.
func (s *otlpSink) Write(r store.AuditRecord) {
	select {
	case s.queue <- r:
	default:
		s.dropped.Inc()
	}
}

// Close sends what is queued and stops.
func (s *otlpSink) Close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}

func (s *otlpSink) run() {
	defer s.wg.Done()
	t := time.NewTicker(otlpFlushInterval)
	defer t.Stop()
	batch := make([]store.AuditRecord, 0, otlpBatch)
	send := func() {
		if len(batch) > 0 {
			s.post(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
			if len(batch) == otlpBatch {
				send()
			}
		case <-t.C:
			send()
		case <-s.stop:
			for {
				select {
				case r := <-s.queue:
					batch = append(batch, r)
					if len(batch) == otlpBatch {
						send()
					}
				default:
					send()
					return
				}
			}
		}
	}
}

func (s *otlpSink) post(batch []store.AuditRecord) {
	body, err := json.Marshal(s.document(batch))
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), otlpTimeout)
		defer cancel()
		var req *http.Request
		if req, err = http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body)); err == nil {
			req.Header.Set("Content-Type", "application/json")
			var resp *http.Response
			if resp, err = s.client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("the collector answered %s", resp.Status)
				}
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.dropped.Add(float64(len(batch)))
		if !s.failing {
			s.log.Error("sending audit records to the OTLP audit sink failed; they are dropped (the store has them); logged again after the next success", "records", len(batch), "error", err)
		}
		s.failing = true
		return
	}
	s.failing = false
}

// document is a batch as an OTLP ExportLogsServiceRequest in its JSON
// encoding: the record whole (the admin API's field names) as the body,
// its main fields as attributes, refusals at severity WARN.
func (s *otlpSink) document(batch []store.AuditRecord) map[string]any {
	recs := make([]map[string]any, 0, len(batch))
	for _, r := range batch {
		body, _ := json.Marshal(sinkRecord(r))
		sev, sevText := 9, "INFO"
		if r.Result != store.AuditSuccess {
			sev, sevText = 13, "WARN"
		}
		attrs := []map[string]any{}
		for _, kv := range [][2]string{{"wif.audit.id", r.ID}, {"wif.audit.result", r.Result}, {"wif.audit.grant_type", r.GrantType},
			{"wif.tenant_id", r.TenantID}, {"wif.client_id", r.ClientID}, {"wif.credential_name", r.CredentialName},
			{"wif.resource", r.Resource}, {"wif.issuer", r.Issuer}, {"wif.subject", r.Subject}, {"wif.correlation_id", r.CorrelationID}} {
			if kv[1] != "" {
				attrs = append(attrs, map[string]any{"key": kv[0], "value": map[string]any{"stringValue": kv[1]}})
			}
		}
		if r.ErrorCode != 0 {
			attrs = append(attrs, map[string]any{"key": "wif.audit.error_code", "value": map[string]any{"intValue": strconv.Itoa(r.ErrorCode)}})
		}
		ts := strconv.FormatInt(r.Time.UnixNano(), 10)
		recs = append(recs, map[string]any{"timeUnixNano": ts, "observedTimeUnixNano": ts, "severityNumber": sev, "severityText": sevText,
			"body": map[string]any{"stringValue": string(body)}, "attributes": attrs})
	}
	return map[string]any{"resourceLogs": []any{map[string]any{
		"resource":  map[string]any{"attributes": []any{map[string]any{"key": "service.name", "value": map[string]any{"stringValue": s.service}}}},
		"scopeLogs": []any{map[string]any{"scope": map[string]any{"name": "wif.audit"}, "logRecords": recs}},
	}}}
}
