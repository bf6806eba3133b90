package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIMDSProbe(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	streams := Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	if err := probeUntilReady(context.Background(), streams, srv.URL+"/readyz", 10*time.Second, time.Millisecond); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d probes, want 3 (two 503s, then 200)", n)
	}
	calls.Store(-1000)
	err := probeUntilReady(context.Background(), streams, srv.URL+"/readyz", 50*time.Millisecond, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready after 50ms (last: 503 Service Unavailable)") {
		t.Fatalf("err = %v, want a timeout naming the last answer", err)
	}
	err = RunWithEnv(context.Background(), streams, []string{"imds", "probe", "--url", "ftp://x"}, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "give an http URL") {
		t.Fatalf("bad url: %v", err)
	}
}
