// Package deploy holds the Helm chart (deploy/helm/wif) and the test that
// lints and renders it with the real helm CLI (built by hack/helm-bin.sh) and
// checks the rendered objects and that every flag they pass exists.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/cli"
	admregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	cache := os.Getenv("WIF_E2E_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "wif-e2e")
	}
	p := filepath.Join(cache, "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		msg := "helm not found on PATH or at " + p + ": run hack/helm-bin.sh"
		if os.Getenv("CI") == "true" || os.Getenv("WIF_E2E") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

var values = []string{
	"webhook.tenantID=72f988bf-86f1-41af-91ab-2d7cd011db47",
	"serve.publicURL=https://wif.example.com",
}

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.Bytes()
}

func TestChartLint(t *testing.T) {
	out := helm(t, "lint", "--strict", "helm/wif", "--set", strings.Join(values, ","))
	if !bytes.Contains(out, []byte("1 chart(s) linted, 0 chart(s) failed")) {
		t.Errorf("helm lint:\n%s", out)
	}
}

func render(t *testing.T, extra ...string) map[string]runtime.Object {
	t.Helper()
	out := helm(t, "template", "wif", "helm/wif", "--namespace", "wif-system", "--set", strings.Join(append(append([]string(nil), values...), extra...), ","))
	objs := map[string]runtime.Object{}
	decoder := scheme.Codecs.UniversalDeserializer()
	for _, doc := range strings.Split(string(out), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode rendered object: %v\n%s", err, doc)
		}
		name := obj.(interface{ GetName() string }).GetName()
		objs[gvk.Kind+"/"+name] = obj
	}
	return objs
}

func get[T runtime.Object](t *testing.T, objs map[string]runtime.Object, key string) T {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		keys := make([]string, 0, len(objs))
		for k := range objs {
			keys = append(keys, k)
		}
		t.Fatalf("%s not rendered; got %v", key, keys)
	}
	return o.(T)
}

// checkFlags parses a container's args with wif's real command tree, so a
// flag the chart passes but the binary lacks fails here, not in a cluster.
func checkFlags(t *testing.T, args []string) {
	t.Helper()
	root := cli.NewRootCommand(cli.Streams{})
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Fatalf("unknown command in %v: %v", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("wif %s rejects the chart's flags %v: %v", cmd.Name(), rest, err)
	}
}

func TestChartRender(t *testing.T) {
	objs := render(t)

	dep := get[*appsv1.Deployment](t, objs, "Deployment/wif-webhook")
	if *dep.Spec.Replicas != 2 {
		t.Errorf("webhook replicas = %d, want 2", *dep.Spec.Replicas)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("webhook without resource requests: %+v", c.Resources)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("readiness probe %+v", c.ReadinessProbe.HTTPGet)
	}
	checkFlags(t, c.Args)
	for _, want := range []string{"--tenant-id=72f988bf-86f1-41af-91ab-2d7cd011db47", "--authority-host=https://wif.example.com",
		"--webhook-config-name=wif-webhook", "--namespace=wif-system", "--cert-secret-name=wif-webhook-cert"} {
		if !contains(c.Args, want) {
			t.Errorf("webhook args %v lack %s", c.Args, want)
		}
	}

	mwc := get[*admregv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration/wif-webhook")
	w := mwc.Webhooks[0]
	if w.Name != "mutation.azure-workload-identity.io" || *w.FailurePolicy != admregv1.Fail || *w.ReinvocationPolicy != admregv1.IfNeededReinvocationPolicy ||
		*w.SideEffects != admregv1.SideEffectClassNone || *w.TimeoutSeconds != 10 || !reflect.DeepEqual(w.AdmissionReviewVersions, []string{"v1"}) {
		t.Errorf("webhook %+v", w)
	}
	if !reflect.DeepEqual(w.ObjectSelector.MatchLabels, map[string]string{"azure.workload.identity/use": "true"}) {
		t.Errorf("objectSelector %+v", w.ObjectSelector)
	}
	if s := w.ClientConfig.Service; s == nil || s.Name != "wif-webhook" || s.Namespace != "wif-system" || *s.Path != "/mutate-v1-pod" {
		t.Errorf("clientConfig %+v", w.ClientConfig)
	}
	wantRule := admregv1.RuleWithOperations{Operations: []admregv1.OperationType{admregv1.Create},
		Rule: admregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}
	if len(w.Rules) != 1 || !reflect.DeepEqual(w.Rules[0].Operations, wantRule.Operations) || !reflect.DeepEqual(w.Rules[0].Resources, wantRule.Resources) {
		t.Errorf("rules %+v", w.Rules)
	}

	cr := get[*rbacv1.ClusterRole](t, objs, "ClusterRole/wif-webhook")
	if !reflect.DeepEqual(cr.Rules[0], rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "list", "watch"}}) {
		t.Errorf("service account rule %+v", cr.Rules[0])
	}
	get[*rbacv1.Role](t, objs, "Role/wif-webhook")
	get[*corev1.Service](t, objs, "Service/wif-webhook")
	pdb := get[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget/wif-webhook")
	if pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable %v", pdb.Spec.MinAvailable)
	}

	serve := get[*appsv1.Deployment](t, objs, "Deployment/wif-serve")
	sc := serve.Spec.Template.Spec.Containers[0]
	checkFlags(t, sc.Args)
	if !contains(sc.Args, "--store=sqlite:/data/wif.db") || serve.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("serve args %v strategy %s", sc.Args, serve.Spec.Strategy.Type)
	}
	if sc.Resources.Requests.Memory().IsZero() {
		t.Error("serve without resource requests")
	}
	pvc := get[*corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim/wif-serve-data")
	if pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("PVC %+v", pvc.Spec)
	}
	if v := serve.Spec.Template.Spec.Volumes[0]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "wif-serve-data" {
		t.Errorf("data volume %+v", v)
	}

	// Bring-your-own certificate: files, no Secret-writing RBAC.
	byo := render(t, "webhook.certificate.existingSecret=wif-tls", "webhook.certificate.caBundle=PEM", "serve.enabled=false")
	c = get[*appsv1.Deployment](t, byo, "Deployment/wif-webhook").Spec.Template.Spec.Containers[0]
	checkFlags(t, c.Args)
	if !contains(c.Args, "--tls-cert-file=/certs/tls.crt") || !contains(c.Args, "--authority-host=https://login.microsoftonline.com/") {
		t.Errorf("args %v", c.Args)
	}
	if _, ok := byo["Role/wif-webhook"]; ok {
		t.Error("Secret RBAC rendered for a bring-your-own certificate")
	}
	if _, ok := byo["Deployment/wif-serve"]; ok {
		t.Error("serve rendered while disabled")
	}
	if got := string(get[*admregv1.MutatingWebhookConfiguration](t, byo, "MutatingWebhookConfiguration/wif-webhook").Webhooks[0].ClientConfig.CABundle); got != "PEM" {
		t.Errorf("caBundle %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestChartStoreFromSecret: with serve.storeSecret the store URL (and its
// password) comes from a Secret as WIF_STORE — the --store flag's
// environment variable — never from the pod spec; no volume claim is made.
func TestChartStoreFromSecret(t *testing.T) {
	objs := render(t, "serve.storeSecret.name=wif-db", "serve.replicas=3")
	c := get[*appsv1.Deployment](t, objs, "Deployment/wif-serve").Spec.Template.Spec.Containers[0]
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--store") {
			t.Errorf("the store is also passed as %q", a)
		}
	}
	if len(c.Env) != 1 || c.Env[0].Name != "WIF_STORE" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.SecretKeyRef == nil ||
		c.Env[0].ValueFrom.SecretKeyRef.Name != "wif-db" || c.Env[0].ValueFrom.SecretKeyRef.Key != "url" {
		t.Fatalf("env: %+v", c.Env)
	}
	if _, ok := objs["PersistentVolumeClaim/wif-serve-data"]; ok {
		t.Error("a volume claim is rendered for a store from a Secret")
	}
	// WIF_STORE is how wif serve reads --store from the environment.
	serve, _, err := cli.NewRootCommand(cli.Streams{}).Find([]string{"serve"})
	if err != nil || serve.Flags().Lookup("store") == nil {
		t.Fatalf("wif serve has no --store flag for WIF_STORE: %v", err)
	}
}
