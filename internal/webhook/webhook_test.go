package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	testClientID = "11111111-2222-3333-4444-555555555555"
	testTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	otherTenant  = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

// lister returns a real client-go lister over an indexer holding sas: the
// informer's read path without a watch (no API server in unit tests).
func lister(t testing.TB, sas ...*corev1.ServiceAccount) corelisters.ServiceAccountLister {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, sa := range sas {
		if err := idx.Add(sa); err != nil {
			t.Fatal(err)
		}
	}
	return corelisters.NewServiceAccountLister(idx)
}

func sa(name string, ann map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Annotations: ann}}
}

func testServiceAccounts(t testing.TB) *ServiceAccounts {
	return &ServiceAccounts{Lister: lister(t,
		sa("workload", map[string]string{ClientIDAnnotation: testClientID}),
		sa("default", map[string]string{ClientIDAnnotation: testClientID}),
		sa("other-tenant", map[string]string{ClientIDAnnotation: testClientID, TenantIDAnnotation: otherTenant, TokenExpirationAnnotation: "7200"}),
		sa("no-client-id", nil),
		sa("bad-expiry", map[string]string{ClientIDAnnotation: testClientID, TokenExpirationAnnotation: "100000"}),
	)}
}

func testConfig() Config {
	return Config{
		TenantID:          testTenant,
		AuthorityHost:     "https://wif.example:8443",
		ProxyImage:        "wif:test",
		ProxyInitImage:    "proxy-init:test",
		NewIdentityHeader: func() string { return "0123456789abcdef" },
	}
}

func container(name string, env ...corev1.EnvVar) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Env: env}
}

func pod(mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Labels: map[string]string{UseLabel: "true"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "workload", Containers: []corev1.Container{container("app")}},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func annotate(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func request(t testing.TB, p *corev1.Pod) *admissionv1.AdmissionRequest {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		UID:       "705ab4f5-6393-11e8-b7cc-42010a800002",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "ns", Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: raw},
	}
}

func newTestHandler(t testing.TB, cfg Config, reg prometheus.Registerer) *Handler {
	t.Helper()
	h, err := NewHandler(cfg, testServiceAccounts(t), HandlerOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// golden is the readable form of a response kept under testdata.
type golden struct {
	Allowed  bool             `json:"allowed"`
	Code     int32            `json:"code,omitempty"`
	Message  string           `json:"message,omitempty"`
	Warnings []string         `json:"warnings,omitempty"`
	Patch    *json.RawMessage `json:"patch,omitempty"`
}

func checkGolden(t *testing.T, name string, resp *admissionv1.AdmissionResponse) {
	t.Helper()
	g := golden{Allowed: resp.Allowed, Warnings: resp.Warnings}
	if resp.Result != nil {
		g.Code, g.Message = resp.Result.Code, resp.Result.Message
	}
	if resp.Patch != nil {
		if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch type = %v, want JSONPatch", resp.PatchType)
		}
		raw := json.RawMessage(resp.Patch)
		g.Patch = &raw
	}
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", strings.ReplaceAll(name, " ", "-")+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("response differs from %s (go test -update rewrites it)\ngot:\n%s", path, got)
	}
}

// applyPatch applies resp's patch to the request's raw object, as the API
// server does, and decodes the result.
func applyPatch(t testing.TB, raw []byte, resp *admissionv1.AdmissionResponse) ([]byte, *corev1.Pod) {
	t.Helper()
	out := raw
	if resp.Patch != nil {
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("decode patch: %v", err)
		}
		if out, err = p.Apply(raw); err != nil {
			t.Fatalf("apply patch: %v\n%s", err, resp.Patch)
		}
	}
	var p corev1.Pod
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return out, &p
}

func nativeConfig() Config { c := testConfig(); c.NativeSidecar = true; return c }
func legacyConfig() Config { c := testConfig(); c.LegacyTokenPath = true; return c }

var handleCases = []struct {
	name string
	cfg  func() Config
	pod  *corev1.Pod
}{
	{"plain", testConfig, pod(nil)},
	{"generate name without namespace", testConfig, pod(func(p *corev1.Pod) { p.Name, p.Namespace, p.GenerateName = "", "", "app-7d9f8-" })},
	{"default service account", testConfig, pod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "" })},
	{"skip containers", testConfig, pod(func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, container("istio-proxy"), container("log"))
		annotate(SkipContainersAnnotation, "istio-proxy; log")(p)
	})},
	{"init containers", testConfig, pod(func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{container("migrate")} })},
	{"existing env kept", testConfig, pod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: EnvClientID, Value: "my-own-client-id"},
			{Name: EnvTenantID, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "tenant"}}},
		}
	})},
	{"service account tenant and expiration", testConfig, pod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "other-tenant" })},
	{"pod expiration wins", testConfig, pod(func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "other-tenant"
		annotate(TokenExpirationAnnotation, "86400")(p)
	})},
	{"existing reserved volume replaced", testConfig, pod(func(p *corev1.Pod) {
		name := VolumeName("app")
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: name, MountPath: "/wrong"}}
	})},
	{"missing client id warns", testConfig, pod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "no-client-id" })},
	{"legacy token path", legacyConfig, pod(nil)},
	{"sidecar", testConfig, pod(annotate(InjectProxySidecarAnnotation, "true"))},
	{"sidecar port and init", testConfig, pod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{container("migrate")}
		annotate(InjectProxySidecarAnnotation, "", ProxySidecarPortAnnotation, "9000")(p)
	})},
	{"native sidecar", nativeConfig, pod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{container("migrate")}
		annotate(InjectProxySidecarAnnotation, "true")(p)
	})},
	{"native sidecar with redirect", nativeConfig, pod(annotate(InjectProxySidecarAnnotation, "true", ProxySidecarRedirectAnnotation, "true"))},
	{"sidecar with host network without redirect", testConfig, pod(func(p *corev1.Pod) {
		p.Spec.HostNetwork = true
		annotate(InjectProxySidecarAnnotation, "true")(p)
	})},
	// Denials, with upstream's messages where upstream has one.
	{"deny pod expiration out of range", testConfig, pod(annotate(TokenExpirationAnnotation, "100"))},
	{"deny service account expiration out of range", testConfig, pod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "bad-expiry" })},
	{"deny expiration not an integer", testConfig, pod(annotate(TokenExpirationAnnotation, "1h"))},
	{"deny missing service account", testConfig, pod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "ghost" })},
	{"deny bad proxy port", testConfig, pod(annotate(InjectProxySidecarAnnotation, "true", ProxySidecarPortAnnotation, "invalid"))},
	{"deny proxy port out of range", testConfig, pod(annotate(InjectProxySidecarAnnotation, "true", ProxySidecarPortAnnotation, "70000"))},
	{"deny host network redirect", testConfig, pod(func(p *corev1.Pod) {
		p.Spec.HostNetwork = true
		annotate(InjectProxySidecarAnnotation, "true", ProxySidecarRedirectAnnotation, "true")(p)
	})},
}

func TestHandleGolden(t *testing.T) {
	for _, tc := range handleCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler(t, tc.cfg(), nil)
			req := request(t, tc.pod)
			resp := h.Review(context.Background(), req)
			if resp.UID != req.UID {
				t.Errorf("uid = %q, want %q", resp.UID, req.UID)
			}
			checkGolden(t, tc.name, resp)
			if !resp.Allowed {
				if resp.Patch != nil {
					t.Error("a denial carries a patch")
				}
				return
			}
			for _, op := range mustOps(t, resp.Patch) {
				if op.Op == "remove" && tc.name != "existing reserved volume replaced" {
					t.Errorf("patch removes %s", op.Path)
				}
			}
		})
	}
}

func mustOps(t testing.TB, patch []byte) []PatchOp {
	var ops []PatchOp
	if patch != nil {
		if err := json.Unmarshal(patch, &ops); err != nil {
			t.Fatal(err)
		}
	}
	return ops
}

// TestReinvocationChangesNothing: with reinvocationPolicy IfNeeded the API
// server may send the already-mutated pod again; the second pass must be a
// no-op (no patch), and the patched pod must equal the in-memory mutation.
func TestReinvocationChangesNothing(t *testing.T) {
	for _, tc := range handleCases {
		if strings.HasPrefix(tc.name, "deny") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			h := newTestHandler(t, cfg, nil)
			req := request(t, tc.pod)
			first := h.Review(context.Background(), req)
			raw, patched := applyPatch(t, req.Object.Raw, first)

			want := tc.pod.DeepCopy()
			c := cfg
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			sa, err := testServiceAccounts(t).GetServiceAccount(context.Background(), "ns", map[bool]string{true: "default", false: tc.pod.Spec.ServiceAccountName}[tc.pod.Spec.ServiceAccountName == ""])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Mutate(want, "ns", sa); err != nil {
				t.Fatal(err)
			}
			want.Namespace = tc.pod.Namespace
			wantJSON, _ := json.Marshal(want)
			gotJSON, _ := json.Marshal(patched)
			if !bytes.Equal(wantJSON, gotJSON) {
				t.Errorf("patched pod differs from the mutation\ngot:  %s\nwant: %s", gotJSON, wantJSON)
			}

			req2 := *req
			req2.Object = runtime.RawExtension{Raw: raw}
			// A different header generator proves the sidecar's header is reused.
			h2cfg := cfg
			h2cfg.NewIdentityHeader = func() string { return "a-different-header" }
			h2 := newTestHandler(t, h2cfg, nil)
			second := h2.Review(context.Background(), &req2)
			if !second.Allowed || second.Patch != nil {
				t.Errorf("second pass: allowed=%v patch=%s, want allowed and no patch", second.Allowed, second.Patch)
			}
		})
	}
}

func TestMutationRules(t *testing.T) {
	h := newTestHandler(t, testConfig(), nil)
	p := pod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{container("migrate")}
		p.Spec.Containers = append(p.Spec.Containers, container("istio-proxy"))
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: EnvClientID, Value: "mine"}}
		annotate(SkipContainersAnnotation, "istio-proxy")(p)
	})
	req := request(t, p)
	_, got := applyPatch(t, req.Object.Raw, h.Review(context.Background(), req))
	wantEnv := []corev1.EnvVar{
		{Name: EnvClientID, Value: testClientID},
		{Name: EnvTenantID, Value: testTenant},
		{Name: EnvFederatedToken, Value: "/var/run/secrets/azure/wi/token/azure-identity-token"},
		{Name: EnvAuthorityHost, Value: "https://wif.example:8443/"},
	}
	check := func(what string, got, want any) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
		}
	}
	vol := VolumeName("app")
	mounts := []corev1.VolumeMount{{Name: vol, ReadOnly: true, MountPath: "/var/run/secrets/azure/wi"}}
	check("init env", got.Spec.InitContainers[0].Env, wantEnv)
	check("init mounts", got.Spec.InitContainers[0].VolumeMounts, mounts)
	check("app env (own AZURE_CLIENT_ID kept)", got.Spec.Containers[0].Env, append([]corev1.EnvVar{{Name: EnvClientID, Value: "mine"}}, wantEnv[1:]...))
	check("skipped env", got.Spec.Containers[1].Env, []corev1.EnvVar(nil))
	check("skipped mounts", got.Spec.Containers[1].VolumeMounts, []corev1.VolumeMount(nil))
	exp, mode := int64(3600), int32(420)
	check("volume", got.Spec.Volumes, []corev1.Volume{{Name: vol, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: "api://AzureADTokenExchange", ExpirationSeconds: &exp, Path: "token/azure-identity-token"}}},
		DefaultMode: &mode}}}})
	if want := "azure-workload-identity-reserved-"; !strings.HasPrefix(vol, want) || len(vol) != 63 {
		t.Errorf("volume name %q: want %s + 30 hex characters", vol, want)
	}
	// v1.6.0's name for pod "app": sha256("app") = a172cedcae47474b615c54d510a5d84a8dea3032e958587430b413538be3f333.
	if vol != "azure-workload-identity-reserved-a172cedcae47474b615c54d510a5d8" {
		t.Errorf("volume name = %q", vol)
	}
}

func TestTokenExpiration(t *testing.T) {
	cases := []struct {
		name          string
		podAnn, saAnn string
		want          int64
		wantErr       string
	}{
		{"default", "", "", 3600, ""},
		{"service account", "", "7200", 7200, ""},
		{"pod wins", "86400", "7200", 86400, ""},
		{"minimum", "3600", "", 3600, ""},
		{"below minimum", "3599", "", 0, "token expiration 3599 not valid. Expected value to be between 3600 and 86400"},
		{"above maximum", "", "86401", 0, "token expiration 86401 not valid. Expected value to be between 3600 and 86400"},
		{"pod not an integer", "invalid", "7200", 0, `azure.workload.identity/service-account-token-expiration annotation "invalid" on the pod is not an integer: strconv.ParseInt: parsing "invalid": invalid syntax. Expected value to be between 3600 and 86400`},
		{"service account not an integer", "", "1h", 0, `azure.workload.identity/service-account-token-expiration annotation "1h" on the service account is not an integer: strconv.ParseInt: parsing "1h": invalid syntax. Expected value to be between 3600 and 86400`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(nil)
			if tc.podAnn != "" {
				annotate(TokenExpirationAnnotation, tc.podAnn)(p)
			}
			s := sa("x", nil)
			if tc.saAnn != "" {
				s.Annotations = map[string]string{TokenExpirationAnnotation: tc.saAnn}
			}
			got, err := TokenExpiration(p, s)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSkipContainersAndProxyPort(t *testing.T) {
	for ann, want := range map[string][]string{"": nil, "a": {"a"}, "a;b": {"a", "b"}, " a ; b ;": {"a", "b"}} {
		got := SkipContainers(pod(annotate(SkipContainersAnnotation, ann)))
		if len(got) != len(want) {
			t.Errorf("%q: got %v, want %v", ann, got, want)
		}
		for _, w := range want {
			if !got[w] {
				t.Errorf("%q: %q missing from %v", ann, w, got)
			}
		}
	}
	ports := []struct {
		ann     *string
		want    int32
		wantErr string
	}{
		{nil, 8000, ""},
		{ptr("8080"), 8080, ""},
		{ptr("invalid"), 0, `failed to parse proxy sidecar port: strconv.ParseInt: parsing "invalid": invalid syntax`},
		{ptr("0"), 0, "proxy sidecar port 0 not valid. Expected value to be between 1 and 65535"},
	}
	for _, tc := range ports {
		p := pod(nil)
		if tc.ann != nil {
			annotate(ProxySidecarPortAnnotation, *tc.ann)(p)
		}
		got, err := ProxyPort(p)
		if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) || got != tc.want {
			t.Errorf("port %v: got %d, %v; want %d, %q", tc.ann, got, err, tc.want, tc.wantErr)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestConfigValidate(t *testing.T) {
	c := Config{AuthorityHost: "https://wif.example"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.AuthorityHost != "https://wif.example/" || c.Audience != DefaultAudience || c.ProxyImage == "" {
		t.Errorf("defaults not filled: %+v", c)
	}
	bad := Config{AuthorityHost: "wif.example"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `authority host "wif.example/" is not a URL`) {
		t.Errorf("err = %v", err)
	}
}

func TestServeHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, testConfig(), reg)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	review := func(req *admissionv1.AdmissionRequest) []byte {
		b, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
		return b
	}
	good := review(request(t, pod(nil)))
	cases := []struct {
		name, method, ctype string
		body                []byte
		status              int
		bodyHas             string
	}{
		{"ok", "POST", "application/json", good, 200, `"allowed":true`},
		{"get", "GET", "", nil, 405, "POST an AdmissionReview"},
		{"content type", "POST", "text/plain", good, 415, `unsupported content type "text/plain"`},
		{"garbage", "POST", "application/json", []byte("{"), 400, "decode AdmissionReview"},
		{"wrong kind", "POST", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), 400, `expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got "admission.k8s.io/v1beta1"`},
		{"no request", "POST", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "AdmissionReview has no request"},
		{"too large", "POST", "application/json", bytes.Repeat([]byte(" "), MaxReviewBytes+1), 413, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+Path, bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(buf.String(), tc.bodyHas) {
				t.Errorf("got %d %s; want %d containing %q", resp.StatusCode, buf.String(), tc.status, tc.bodyHas)
			}
		})
	}
	if got := testutil.ToFloat64(h.total.WithLabelValues("ns", "mutated")); got != 1 {
		t.Errorf("wif_webhook_mutations_total{ns,mutated} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "wif_webhook_admission_duration_seconds"); err != nil || n != 1 {
		t.Errorf("latency histogram: %d series, %v", n, err)
	}
}

func TestNotPodsUnchanged(t *testing.T) {
	h := newTestHandler(t, testConfig(), nil)
	req := request(t, pod(nil))
	req.Operation = admissionv1.Update
	if resp := h.Review(context.Background(), req); !resp.Allowed || resp.Patch != nil {
		t.Errorf("UPDATE: %+v", resp)
	}
	req = request(t, pod(nil))
	req.Object.Raw = []byte(`{"spec":{"containers":"nope"}}`)
	resp := h.Review(context.Background(), req)
	if resp.Allowed || resp.Result.Code != 400 || !strings.HasPrefix(resp.Result.Message, "decode pod:") {
		t.Errorf("bad pod: %+v", resp.Result)
	}
}
