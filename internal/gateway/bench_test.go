package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/gateway/testissuer"
)

// benchClient sends requests to a gateway over loopback with keep-alive.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
}

func benchGateways(b *testing.B) (off, on *gwEnv, token string) {
	off = startGateway(b, wrap(`<set-header name="X-Tag" exists-action="override"><value>1</value></set-header>`), nil)
	on = startGateway(b, policySample(b), nil)
	token = on.v1(b, nil)
	return off, on, token
}

// hit sends one request; it reports failures with b.Error, which (unlike
// b.Fatal) is allowed in RunParallel's goroutines.
func hit(b *testing.B, c *http.Client, url, token string) bool {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("status %d", resp.StatusCode)
		return false
	}
	return true
}

// Both sides send the same request, Authorization header included, so the
// difference is the validation and the identity headers alone.

// BenchmarkGateway measures proxied requests per second through the
// gateway to a local backend: "validation-off" runs a policy without
// validate-jwt, "validation-on" runs policysample.xml with a warm
// verified-token cache. Both run in parallel on the same machine.
func BenchmarkGateway(b *testing.B) {
	off, on, token := benchGateways(b)
	for _, tc := range []struct {
		name  string
		env   *gwEnv
		token string
	}{{"validation-off", off, token}, {"validation-on", on, token}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchClient()
			hit(b, c, tc.env.srv.URL+"/x", tc.token) // warm the key and token caches
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !hit(b, c, tc.env.srv.URL+"/x", tc.token) {
						return
					}
				}
			})
		})
	}
}

// BenchmarkGatewayOverhead alternates small batches of requests with
// validation off and on in one run, so what else runs on the machine hits
// both alike. It reports each side's wall time and CPU time (user+system
// of this process, which holds client, gateway and backend) per request,
// and the overhead of validation in percent of each. CPU time is the
// robust figure on a shared machine: other processes stretch wall time but
// not this process's CPU time.
func BenchmarkGatewayOverhead(b *testing.B) {
	off, on, token := benchGateways(b)
	c := benchClient()
	hit(b, c, off.srv.URL+"/x", token)
	hit(b, c, on.srv.URL+"/x", token)
	const batch = 16
	var wallOff, wallOn, cpuOff, cpuOn time.Duration
	var n int
	b.ReportAllocs()
	b.ResetTimer()
	for n < b.N {
		c0, w0 := cpuTime(), time.Now()
		for i := 0; i < batch; i++ {
			hit(b, c, off.srv.URL+"/x", token)
		}
		c1, w1 := cpuTime(), time.Now()
		for i := 0; i < batch; i++ {
			hit(b, c, on.srv.URL+"/x", token)
		}
		c2, w2 := cpuTime(), time.Now()
		wallOff += w1.Sub(w0)
		wallOn += w2.Sub(w1)
		cpuOff += c1 - c0
		cpuOn += c2 - c1
		n += 2 * batch
	}
	reqs := float64(n / 2)
	b.ReportMetric(float64(wallOff.Nanoseconds())/reqs, "off-wall-ns/req")
	b.ReportMetric(float64(wallOn.Nanoseconds())/reqs, "on-wall-ns/req")
	b.ReportMetric(float64(cpuOff.Nanoseconds())/reqs, "off-cpu-ns/req")
	b.ReportMetric(float64(cpuOn.Nanoseconds())/reqs, "on-cpu-ns/req")
	b.ReportMetric(100*(float64(cpuOn)-float64(cpuOff))/float64(cpuOff), "cpu-overhead-%")
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cannedBackend answers every proxied request at once, in memory, so
// BenchmarkGatewayHandler measures the gateway's own work per request.
type cannedBackend struct{}

func (cannedBackend) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: http.NoBody, Request: r, ContentLength: 0}, nil
}

// BenchmarkGatewayHandler is the gateway's per-request cost without any
// network: ServeHTTP with a recorder, the backend an in-memory RoundTripper.
func BenchmarkGatewayHandler(b *testing.B) {
	for _, tc := range []struct {
		name   string
		policy func(testing.TB) string
	}{
		{"validation-off", func(testing.TB) string {
			return wrap(`<set-header name="X-Tag" exists-action="override"><value>1</value></set-header>`)
		}},
		{"validation-on", policySample},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := &gwEnv{iss: testissuer.Start(b), now: time.Now()}
			cfg := &Config{
				TokenService: TokenService{URL: e.iss.URL, EntraPublicHosts: true},
				Routes:       []Route{{Name: "api", PathPrefix: "/", Backend: "http://backend.invalid/", Policy: "p.xml"}},
			}
			pol, err := apim.Parse("p.xml", []byte(tc.policy(b)))
			if err != nil {
				b.Fatal(err)
			}
			gw, err := New(cfg, []*apim.Policy{pol}, Options{KeyClient: e.iss.Client, BackendTransport: cannedBackend{}})
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			token := e.v1(b, nil)
			req := httptest.NewRequest("GET", "http://gw/x", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			serve := func() {
				w := httptest.NewRecorder()
				gw.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			serve()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				serve()
			}
		})
	}
}

// BenchmarkNormalizePath: the per-request path normalization (decode once,
// resolve dot segments, refuse what backends disagree on).
func BenchmarkNormalizePath(b *testing.B) {
	for _, p := range []string{"/api/v2/orders/12345/items", "/api/v2/orders/12345/items%20list", "/api//v2/./orders/../orders/12345"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := normalizePath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
