package wiftest

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is a span an OTLP receiver got.
type Span struct {
	Service  string
	Name     string
	TraceID  string
	SpanID   string
	ParentID string
	Kind     int32
	Attrs    map[string]string
}

// OTLPReceiver is an in-process OTLP/HTTP trace collector (POST
// /v1/traces, protobuf), for tests of wif's tracing: a real exporter sends
// to it over loopback HTTP.
type OTLPReceiver struct {
	URL   string
	mu    sync.Mutex
	spans []Span
}

// NewOTLPReceiver starts a receiver, stopped when the test ends.
func NewOTLPReceiver(t testing.TB) *OTLPReceiver {
	t.Helper()
	rc := &OTLPReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var body io.Reader = io.LimitReader(r.Body, 16<<20)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					svc = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					attrs := map[string]string{}
					for _, a := range sp.Attributes {
						v := a.GetValue()
						switch {
						case v.GetStringValue() != "":
							attrs[a.Key] = v.GetStringValue()
						default:
							attrs[a.Key] = v.String()
						}
					}
					rc.spans = append(rc.spans, Span{Service: svc, Name: sp.Name, TraceID: hex.EncodeToString(sp.TraceId), SpanID: hex.EncodeToString(sp.SpanId),
						ParentID: hex.EncodeToString(sp.ParentSpanId), Kind: int32(sp.Kind), Attrs: attrs})
				}
			}
		}
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

// Wait returns the spans received once one named each of names has
// arrived (or fails the test after 10 s).
func (rc *OTLPReceiver) Wait(t testing.TB, names ...string) []Span {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rc.mu.Lock()
		got := append([]Span(nil), rc.spans...)
		rc.mu.Unlock()
		have := map[string]bool{}
		for _, s := range got {
			have[s.Name] = true
		}
		all := true
		for _, n := range names {
			all = all && have[n]
		}
		if all {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans %v not all received; got %+v", names, got)
		}
	}
}
