package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/tlsutil"
)

// The fake clientset stands in for the API server in unit tests (the
// end-to-end test in test/e2e runs the same code against a real one).

func TestServiceAccountDirectReadOnMiss(t *testing.T) {
	client := fake.NewSimpleClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: "fresh", Namespace: "ns", Annotations: map[string]string{ClientIDAnnotation: testClientID}}})
	sas := &ServiceAccounts{Lister: lister(t), Client: client}
	got, err := sas.GetServiceAccount(context.Background(), "ns", "fresh")
	if err != nil || got.Annotations[ClientIDAnnotation] != testClientID {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := sas.GetServiceAccount(context.Background(), "ns", "ghost"); err == nil {
		t.Fatal("a missing service account was found")
	}
	if n := len(client.Actions()); n != 2 {
		t.Errorf("%d API calls, want 2 (one GET per miss)", n)
	}
}

func TestCertManager(t *testing.T) {
	ctx := context.Background()
	client := fake.NewSimpleClientset(&admregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "wif-webhook"},
		Webhooks:   []admregv1.MutatingWebhook{{Name: "a.wif.dev"}, {Name: "b.wif.dev"}},
	})
	// A real clock with short lives (tlsutil stamps certificates with the
	// real time): the certificate is due after 2.67 s, the CA after 6 s.
	newManager := func() *CertManager {
		return &CertManager{Client: client, Namespace: "wif-system", SecretName: "cert", Hosts: []string{"wif-webhook.wif-system.svc", "127.0.0.1"},
			WebhookConfigName: "wif-webhook", Validity: 4 * time.Second, CAValidity: 9 * time.Second}
	}
	start := time.Now()
	a, b := newManager(), newManager()
	if err := a.Ready(ctx); err == nil {
		t.Fatal("ready before reconciling")
	}
	if _, err := a.GetCertificate(nil); err == nil {
		t.Fatal("a certificate before reconciling")
	}
	for _, m := range []*CertManager{a, b} {
		if err := m.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	certA, _ := a.GetCertificate(nil)
	certB, _ := b.GetCertificate(nil)
	if !bytes.Equal(certA.Certificate[0], certB.Certificate[0]) {
		t.Fatal("two replicas serve different certificates")
	}
	verify := func(m *CertManager, host string) *x509.Certificate {
		t.Helper()
		c, _ := m.GetCertificate(nil)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(m.CABundle())
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Fatalf("serving certificate does not verify against the bundle for %s: %v", host, err)
		}
		return leaf
	}
	first := verify(a, "wif-webhook.wif-system.svc")
	verify(a, "127.0.0.1")
	cfg, _ := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "wif-webhook", metav1.GetOptions{})
	for _, w := range cfg.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, a.CABundle()) {
			t.Errorf("webhook %s caBundle not patched", w.Name)
		}
	}
	if err := a.Reconcile(ctx); err != nil { // nothing due: nothing changes
		t.Fatal(err)
	}
	if c, _ := a.GetCertificate(nil); !bytes.Equal(c.Certificate[0], first.Raw) {
		t.Fatal("certificate renewed before it was due")
	}

	// With less than a third of its life left the certificate is renewed
	// under the same CA, so the caBundle stays.
	bundle := a.CABundle()
	time.Sleep(time.Until(start.Add(3200 * time.Millisecond)))
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := verify(b, "127.0.0.1")
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("certificate not renewed")
	}
	if !bytes.Equal(b.CABundle(), bundle) {
		t.Fatal("CA changed on a certificate renewal")
	}
	if err := a.Reconcile(ctx); err != nil { // the other replica picks the new one up
		t.Fatal(err)
	}
	if c, _ := a.GetCertificate(nil); !bytes.Equal(c.Certificate[0], renewed.Raw) {
		t.Fatal("replica a still serves the old certificate")
	}

	// Near the CA's end: a new CA, the old one kept in the bundle.
	time.Sleep(time.Until(start.Add(6500 * time.Millisecond)))
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(parseCerts(a.CABundle())); got != 2 {
		t.Fatalf("bundle holds %d CAs after CA rotation, want 2 (new, old)", got)
	}
	verify(a, "127.0.0.1")
	cfg, _ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "wif-webhook", metav1.GetOptions{})
	if !bytes.Equal(cfg.Webhooks[0].ClientConfig.CABundle, a.CABundle()) {
		t.Error("caBundle not patched after CA rotation")
	}
}

func TestCreatePatchArrays(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{`{"a":[1,2]}`, `{"a":[1,2,3]}`, `[{"op":"add","path":"/a/-","value":3}]`},
		{`{"a":[{"n":1},{"n":2}]}`, `{"a":[{"n":0},{"n":1},{"n":2}]}`, `[{"op":"add","path":"/a/0","value":{"n":0}}]`},
		{`{"a":[1,2,3]}`, `{"a":[1]}`, `[{"op":"replace","path":"/a","value":[1]}]`},
		{`{"a/b":{"c~d":1}}`, `{"a/b":{"c~d":null}}`, `[{"op":"replace","path":"/a~1b/c~0d","value":null}]`},
		{`{"x":1}`, `{}`, `[{"op":"remove","path":"/x"}]`},
	}
	for _, tc := range cases {
		ops, err := CreatePatch([]byte(tc.from), []byte(tc.to))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(ops)
		if string(got) != tc.want {
			t.Errorf("%s -> %s: got %s, want %s", tc.from, tc.to, got, tc.want)
		}
	}
}

func FuzzDecodeReview(f *testing.F) {
	h := newTestHandler(f, testConfig(), nil)
	for _, p := range []*corev1.Pod{pod(nil), pod(annotate(InjectProxySidecarAnnotation, "true", TokenExpirationAnnotation, "7200"))} {
		b, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: request(f, p)})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		review, err := DecodeReview(body)
		if err != nil {
			return
		}
		resp := h.Review(context.Background(), review.Request)
		if resp.UID != review.Request.UID {
			t.Fatalf("uid %q, want %q", resp.UID, review.Request.UID)
		}
		if resp.Allowed && resp.Patch != nil {
			if _, err := CreatePatch(review.Request.Object.Raw, review.Request.Object.Raw); err != nil {
				t.Fatalf("a patched object is not JSON: %v", err)
			}
		}
		if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatal("a denial without a message")
		}
	})
}

// BenchmarkAdmissionHTTPS measures admission reviews per second and the p99
// latency seen by 200 concurrent clients over HTTPS (a real TLS listener,
// keep-alive connections as the API server keeps them, the service account
// found in a pre-populated lister), each sending its next review as soon as
// the last is answered: the throughput ceiling. At saturation the clients'
// latency is queueing (Little's law: 200 in flight / throughput), so
// server-p99-ms (decode to encode inside the handler) is reported too.
func BenchmarkAdmissionHTTPS(b *testing.B) { benchAdmission(b, 0) }

// BenchmarkAdmissionHTTPSPaced offers 1000 reviews/s spread over the same
// 200 concurrent clients (an open loop: latency is measured from each
// review's scheduled start, so a stall is not hidden), the p99 an API server
// sees from a webhook that is not saturated.
func BenchmarkAdmissionHTTPSPaced(b *testing.B) { benchAdmission(b, 1000) }

func benchAdmission(b *testing.B, rate int) {
	h := newTestHandler(b, testConfig(), nil)
	ca, err := tlsutil.NewCA("bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := httpx.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	// Server-side time per review (decode, lookup, mutation, patch,
	// encode), apart from the queueing that 200 clients on 2 cores cause.
	var smu sync.Mutex
	var server []time.Duration
	mux := http.NewServeMux()
	mux.Handle("POST "+Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		smu.Lock()
		server = append(server, d)
		smu.Unlock()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = (&httpx.Server{Handler: mux, TLSConfig: tlsutil.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })}).Serve(ctx, ln)
	}()
	defer func() { cancel(); <-done }()

	const concurrency = 200
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.Pool()},
		MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency,
	}, Timeout: 10 * time.Second}
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: request(b, pod(nil))})
	url := "https://" + ln.Addr().String() + Path
	do := func() time.Duration {
		start := time.Now()
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Error(err)
			return 0
		}
		var review admissionv1.AdmissionReview
		err = json.NewDecoder(resp.Body).Decode(&review)
		_, _ = io.Copy(io.Discard, resp.Body) // to EOF, so the connection is reused
		resp.Body.Close()
		if err != nil || review.Response == nil || !review.Response.Allowed || review.Response.Patch == nil {
			b.Errorf("bad response: %v %+v", err, review.Response)
		}
		return time.Since(start)
	}
	// Warm up: open the connections (TLS handshakes are not what we measure).
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() { do() })
	}
	wg.Wait()

	smu.Lock()
	server = server[:0]
	smu.Unlock()
	b.ResetTimer()
	lat := make([][]time.Duration, concurrency)
	next := make(chan time.Time, b.N)
	start := time.Now()
	if rate == 0 {
		for range b.N {
			next <- time.Time{}
		}
		close(next)
	} else {
		go func() {
			interval := time.Second / time.Duration(rate)
			for i := range b.N {
				at := start.Add(time.Duration(i) * interval)
				time.Sleep(time.Until(at))
				next <- at
			}
			close(next)
		}()
	}
	for i := range concurrency {
		wg.Go(func() {
			for at := range next {
				d := do()
				if !at.IsZero() {
					d = time.Since(at)
				}
				lat[i] = append(lat[i], d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reviews/s")
	sort.Slice(server, func(i, j int) bool { return server[i] < server[j] })
	if len(server) > 0 {
		b.ReportMetric(float64(server[len(server)*99/100].Microseconds())/1000, "server-p99-ms")
	}
}
