package gateway

import (
	"io"
	"net/http"
	"testing"
	"time"
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

// BenchmarkGatewayOverhead alternates batches of requests with validation
// off and on in one run, so machine noise hits both alike, and reports each
// side's ns/req and the overhead of validation in percent.
func BenchmarkGatewayOverhead(b *testing.B) {
	off, on, token := benchGateways(b)
	c := benchClient()
	hit(b, c, off.srv.URL+"/x", token)
	hit(b, c, on.srv.URL+"/x", token)
	const batch = 64
	var tOff, tOn time.Duration
	var n int
	b.ResetTimer()
	for n < b.N {
		start := time.Now()
		for i := 0; i < batch; i++ {
			hit(b, c, off.srv.URL+"/x", token)
		}
		mid := time.Now()
		for i := 0; i < batch; i++ {
			hit(b, c, on.srv.URL+"/x", token)
		}
		tOff += mid.Sub(start)
		tOn += time.Since(mid)
		n += 2 * batch
	}
	reqs := float64(n / 2)
	b.ReportMetric(float64(tOff.Nanoseconds())/reqs, "off-ns/req")
	b.ReportMetric(float64(tOn.Nanoseconds())/reqs, "on-ns/req")
	b.ReportMetric(100*(float64(tOn)-float64(tOff))/float64(tOff), "overhead-%")
}
