package sts_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// loadResult is what the load generator process reports.
type loadResult struct {
	OK, Shed, ShedWithRetryAfter, Other int
	Seconds                             float64
	P50, P99, P999, Max                 float64 // ms, successful exchanges
}

// TestLoadgenChild is the load generator of BenchmarkExchangeUnderLoad,
// run as a separate process (this test binary, re-executed) so that the
// clients' TLS and HTTP work is not scheduled with the server's
// goroutines. It does nothing in a normal test run.
func TestLoadgenChild(t *testing.T) {
	if os.Getenv("WIF_LOADGEN") == "" {
		t.Skip("only runs as BenchmarkExchangeUnderLoad's load generator")
	}
	env := func(k string) string { return os.Getenv("WIF_LOADGEN_" + k) }
	clients, _ := strconv.Atoi(env("CLIENTS"))
	secs, _ := strconv.ParseFloat(env("SECONDS"), 64)
	rate, _ := strconv.ParseFloat(env("RATE"), 64) // total requests/s; 0: closed loop
	body, _ := os.ReadFile(env("BODY"))
	caPEM, _ := os.ReadFile(env("CA"))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in " + env("CA"))
	}
	// HTTP/1.1, one keep-alive connection per client (as hey does).
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	if env("H2") == "1" { // HTTP/2, as the Azure SDKs speak it: one multiplexed connection
		tr = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := env("URL")
	var mu sync.Mutex
	var lat []float64
	var res loadResult
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var interval time.Duration
			next := time.Now()
			if rate > 0 {
				interval = time.Duration(float64(clients) / rate * float64(time.Second))
				next = next.Add(time.Duration(c) * interval / time.Duration(clients))
			}
			for time.Now().Before(deadline) {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/x-www-form-urlencoded", strings.NewReader(string(body)))
				if err != nil {
					mu.Lock()
					res.Other++
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				mu.Lock()
				switch {
				case resp.StatusCode == 200:
					res.OK++
					lat = append(lat, float64(d)/float64(time.Millisecond))
				case resp.StatusCode == 503:
					res.Shed++
					if resp.Header.Get("Retry-After") != "" {
						res.ShedWithRetryAfter++
					}
				default:
					res.Other++
				}
				mu.Unlock()
				if resp.StatusCode == 503 {
					// As the Azure SDKs do: wait Retry-After (bounded here to
					// keep the run's clients busy).
					ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(min(time.Duration(ra)*time.Second, 250*time.Millisecond))
				}
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	res.P50, res.P99, res.P999 = q(0.50), q(0.99), q(0.999)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	out, _ := json.Marshal(res)
	fmt.Println("LOADGEN " + string(out))
}

// BenchmarkExchangeUnderLoad drives the token endpoint from a separate
// load-generator process with 32 and 256 keep-alive clients as fast as
// they are answered (saturation), and at half the capacity measured with
// 32 clients, and reports throughput against the RSA-2048 signing ceiling
// measured in the same run, the client-seen p50/p99/p99.9/max of
// successful exchanges, and the shed rate (503 + Retry-After).
//
//	go test -run '^$' -bench ExchangeUnderLoad -benchtime 1x ./internal/sts/
func BenchmarkExchangeUnderLoad(b *testing.B) {
	var opts []wiftest.Option
	if v := os.Getenv("WIF_BENCH_MAX_INFLIGHT"); v != "" { // compare: -1 turns admission off
		n, _ := strconv.Atoi(v)
		opts = append(opts, wiftest.WithAdmission(n, 0))
	}
	env := wiftest.Start(b, opts...)
	mi := env.CreateManagedIdentity(b, "bench")
	app := env.CreateResourceApp(b, "api://bench", 2, "Data.Read")
	env.Assign(b, mi.PrincipalID, app.AppID, "Data.Read")
	dir := b.TempDir()
	bodyFile, caFile := filepath.Join(dir, "body"), env.CAFile
	body := wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(b, wiftest.Subject("bench"), directory.DefaultAudience, 2*time.Hour), "api://bench/.default").Encode()
	if err := os.WriteFile(bodyFile, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	endpoint := env.URL + "/" + env.TenantID + "/oauth2/v2.0/token"
	load := func(b *testing.B, proto string, clients int, rate float64, secs float64) loadResult {
		return loadgen(b, endpoint, bodyFile, caFile, proto, clients, rate, secs)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	key.Precompute()
	digest := sha256.Sum256([]byte("a typical access token's signing input"))
	ceiling := func() float64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(time.Second)
		for range 2 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					_, _ = rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(n.Load())
	}
	report := func(b *testing.B, r loadResult, signs float64) {
		rate := float64(r.OK) / r.Seconds
		b.ReportMetric(rate, "exchanges/s")
		b.ReportMetric(100*rate/signs, "%ceiling")
		b.ReportMetric(r.P50, "p50-ms")
		b.ReportMetric(r.P99, "p99-ms")
		b.ReportMetric(r.P999, "p99.9-ms")
		b.ReportMetric(r.Max, "max-ms")
		b.ReportMetric(float64(r.Shed)/r.Seconds, "shed/s")
		if r.Shed != r.ShedWithRetryAfter {
			b.Errorf("%d of %d 503s without Retry-After", r.Shed-r.ShedWithRetryAfter, r.Shed)
		}
	}
	load(b, "h2", 8, 0, 0.5) // warm up: connections, key caches
	var capacity float64
	// h2 is how the Azure SDKs connect (Go's transport negotiates HTTP/2);
	// http1.1 with a connection per client is how hey and wrk do.
	for _, proto := range []string{"h2", "http1.1"} {
		for _, clients := range []int{32, 256} {
			b.Run(fmt.Sprintf("saturation/%s/clients=%d", proto, clients), func(b *testing.B) {
				for range b.N {
					signs := ceiling()
					r := load(b, proto, clients, 0, 3)
					report(b, r, (signs+ceiling())/2)
					if clients == 32 && proto == "h2" {
						capacity = float64(r.OK) / r.Seconds
					}
				}
			})
		}
	}
	b.Run("half-capacity/h2/clients=32", func(b *testing.B) {
		if capacity == 0 {
			b.Skip("needs the saturation run first")
		}
		for range b.N {
			signs := ceiling()
			report(b, load(b, "h2", 32, capacity/2, 3), signs)
		}
	})
}

// loadgen runs TestLoadgenChild as a separate process: clients posting
// the form in bodyFile to endpoint (proto "h2" or "http1.1") for secs
// seconds, as fast as answered or at rate requests/s in all.
func loadgen(b *testing.B, endpoint, bodyFile, caFile, proto string, clients int, rate, secs float64) loadResult {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadgenChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+envOrDefault("WIF_LOADGEN_GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0))), "WIF_LOADGEN=1", "WIF_LOADGEN_URL="+endpoint, "WIF_LOADGEN_BODY="+bodyFile, "WIF_LOADGEN_CA="+caFile,
		"WIF_LOADGEN_CLIENTS="+strconv.Itoa(clients), "WIF_LOADGEN_SECONDS="+strconv.FormatFloat(secs, 'f', -1, 64),
		"WIF_LOADGEN_RATE="+strconv.FormatFloat(rate, 'f', -1, 64), "WIF_LOADGEN_H2="+map[string]string{"h2": "1", "http1.1": "0"}[proto])
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("load generator: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(line, "LOADGEN "); ok {
			var r loadResult
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				b.Fatal(err)
			}
			if r.Other > 0 {
				b.Errorf("%d requests neither 200 nor 503", r.Other)
			}
			return r
		}
	}
	b.Fatalf("no result from the load generator:\n%s", out)
	return loadResult{}
}

func envOrDefault(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
