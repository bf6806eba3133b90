package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/httpx"
	admissionv1 "k8s.io/api/admission/v1"
	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestServeReadiness runs Serve with a managed certificate over the fake
// clientset (no API server in unit tests; test/e2e runs the real one):
// /readyz fails while the caBundle cannot be patched, passes once it can, and
// the informer-backed handler then mutates.
func TestServeReadiness(t *testing.T) {
	client := fake.NewSimpleClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: "workload", Namespace: "ns", Annotations: map[string]string{ClientIDAnnotation: testClientID}}})
	ln, err := httpx.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	certs := &CertManager{Client: client, Namespace: "wif-system", SecretName: "cert", Hosts: []string{"127.0.0.1"},
		WebhookConfigName: "wif-webhook", CheckInterval: time.Hour}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeOptions{Config: testConfig(), NativeSidecarMode: "false", Client: client, Listener: ln,
			Certs: certs, Ready: func() { close(ready) }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "https://" + ln.Addr().String()
	// Until the first reconciliation there is no certificate to trust.
	var pool *x509.CertPool
	deadline := time.Now().Add(10 * time.Second)
	for pool == nil && time.Now().Before(deadline) {
		if b := certs.CABundle(); b != nil {
			pool = x509.NewCertPool()
			pool.AppendCertsFromPEM(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pool == nil {
		t.Fatal("no certificate after 10 s")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not ready: certificate: serving certificate not ready yet") {
		t.Fatalf("/readyz before the webhook configuration exists: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "wif-webhook"}, Webhooks: []admregv1.MutatingWebhook{{Name: "w"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("not ready 15 s after the webhook configuration appeared")
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: request(t, pod(nil))})
	resp, err := hc.Post(base+Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	err = json.NewDecoder(resp.Body).Decode(&review)
	resp.Body.Close()
	if err != nil || review.Response == nil || !review.Response.Allowed || review.Response.Patch == nil {
		t.Fatalf("review: %v %+v", err, review.Response)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `wif_webhook_mutations_total{namespace="ns",result="mutated"} 1`) {
		t.Errorf("/metrics: %d, mutation counter missing", code)
	}
}

// BenchmarkReview is the CPU cost of one review inside the handler (decode
// pod, lookup, mutate, patch), without HTTP.
func BenchmarkReview(b *testing.B) {
	h := newTestHandler(b, testConfig(), nil)
	req := request(b, pod(nil))
	b.ReportAllocs()
	for b.Loop() {
		if resp := h.Review(context.Background(), req); !resp.Allowed {
			b.Fatal(resp.Result)
		}
	}
}
