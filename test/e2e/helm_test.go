package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// helmPath is helm on PATH or as hack/helm-bin.sh builds it.
func helmPath(t *testing.T) string {
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
		if required() {
			t.Fatalf("helm not found: run hack/helm-bin.sh (CI=true requires it)")
		}
		t.Skip("helm not found: run hack/helm-bin.sh")
	}
	return p
}

type object struct{ kind, namespace, name string }

// TestHelmChartOnAPIServer installs the chart into a real kube-apiserver
// (no kubelet: the API objects are what is tested): every object is
// accepted, helm upgrade with changed values changes them, helm uninstall
// removes them all, and the values schema refuses a typo.
func TestHelmChartOnAPIServer(t *testing.T) {
	needBinaries(t)
	helm := helmPath(t)
	c := startCluster(t)
	k := c.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "wif-system"
	chart := filepath.Join("..", "..", "deploy", "helm", "wif")
	base := []string{"--kubeconfig", c.Kubeconfig, "--namespace", ns}
	values := "webhook.tenantID=72f988bf-86f1-41af-91ab-2d7cd011db47,serve.publicURL=https://wif.example.com"
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, helm, append(args, base...)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustHelm := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// The schema refuses a typo before anything reaches the server.
	if out, err := run("install", "wif", chart, "--create-namespace", "--set", values+",webhook.replicsa=3"); err == nil ||
		!strings.Contains(out, "additional properties 'replicsa' not allowed") {
		t.Fatalf("a typo in the values: %v\n%s", err, out)
	}

	mustHelm("install", "wif", chart, "--create-namespace", "--set", values)
	objs := manifestObjects(t, mustHelm("get", "manifest", "wif"))
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind]++
		if _, err := getObject(ctx, k, o); err != nil {
			t.Errorf("%s %s/%s was not created: %v", o.kind, o.namespace, o.name, err)
		}
	}
	want := map[string]int{"ClusterRole": 1, "ClusterRoleBinding": 1, "ConfigMap": 1, "Deployment": 2, "MutatingWebhookConfiguration": 1,
		"PersistentVolumeClaim": 1, "PodDisruptionBudget": 1, "Role": 1, "RoleBinding": 1, "Service": 2, "ServiceAccount": 2}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("installed %v, want %v", kinds, want)
	}
	wh, err := k.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "wif-webhook", metav1.GetOptions{})
	if err != nil || len(wh.Webhooks) != 1 || wh.Webhooks[0].ClientConfig.Service == nil || wh.Webhooks[0].ClientConfig.Service.Namespace != ns {
		t.Fatalf("webhook configuration: %v %+v", err, wh)
	}

	// Upgrade with changed values: the objects change in place.
	mustHelm("upgrade", "wif", chart, "--set", values+",webhook.replicas=3,serve.logLevel=debug,webhook.failurePolicy=Ignore")
	dep, err := k.AppsV1().Deployments(ns).Get(ctx, "wif-webhook", metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 3 {
		t.Fatalf("webhook replicas after upgrade: %v %v", err, dep)
	}
	serve, err := k.AppsV1().Deployments(ns).Get(ctx, "wif-serve", metav1.GetOptions{})
	if err != nil || !slices.Contains(serve.Spec.Template.Spec.Containers[0].Args, "--log-level=debug") {
		t.Fatalf("serve args after upgrade: %v %v", err, argsOf(serve))
	}
	if wh, err := k.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "wif-webhook", metav1.GetOptions{}); err != nil || string(*wh.Webhooks[0].FailurePolicy) != "Ignore" {
		t.Fatalf("failurePolicy after upgrade: %v", err)
	}
	// PostgreSQL with replicas: no volume claim, an emptyDir for the spool.
	mustHelm("upgrade", "wif", chart, "--set", values+",serve.store=postgres://db.example/wif,serve.replicas=3")
	objs2 := manifestObjects(t, mustHelm("get", "manifest", "wif"))
	if slices.ContainsFunc(objs2, func(o object) bool { return o.kind == "PersistentVolumeClaim" }) {
		t.Error("a PostgreSQL install renders a volume claim")
	}
	if serve, err = k.AppsV1().Deployments(ns).Get(ctx, "wif-serve", metav1.GetOptions{}); err != nil || *serve.Spec.Replicas != 3 ||
		serve.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
		t.Fatalf("serve on PostgreSQL: %v %+v", err, serve.Spec.Template.Spec.Volumes)
	}

	// wif cluster sync: its own service account, bound to the issuer
	// discovery role only, its own projected token, and args the binary
	// accepts.
	if out, err := run("upgrade", "wif", chart, "--set", values+",clusterSync.enabled=true,clusterSync.trustedIssuer=prod,clusterSync.clientID=not-a-guid"); err == nil ||
		!strings.Contains(out, "/clusterSync/clientID") {
		t.Fatalf("a bad clusterSync.clientID: %v\n%s", err, out)
	}
	const agentID = "6a0c7c1e-4a0e-4f3c-9d1a-2f3e4d5c6b7a"
	// (Still on PostgreSQL: a SQLite volume claim would outlive uninstall
	// here, with no kube-controller-manager to remove its finalizer.)
	mustHelm("upgrade", "wif", chart, "--set", values+",serve.store=postgres://db.example/wif,serve.replicas=3,clusterSync.enabled=true,clusterSync.trustedIssuer=prod,clusterSync.clientID="+agentID)
	objs3 := manifestObjects(t, mustHelm("get", "manifest", "wif"))
	syncDep, err := k.AppsV1().Deployments(ns).Get(ctx, "wif-cluster-sync", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := syncDep.Spec.Template.Spec
	args := pod.Containers[0].Args
	if !slices.Contains(args, "--trusted-issuer=prod") || !slices.Contains(args, "--server=https://wif.example.com") || pod.ServiceAccountName != "wif-cluster-sync" ||
		pod.Containers[0].Env[0].Value != agentID || pod.Volumes[0].Projected.Sources[0].ServiceAccountToken.Audience != "api://AzureADTokenExchange" {
		t.Fatalf("cluster sync deployment: args %v, sa %s, env %v", args, pod.ServiceAccountName, pod.Containers[0].Env)
	}
	crb, err := k.RbacV1().ClusterRoleBindings().Get(ctx, "wif-cluster-sync", metav1.GetOptions{})
	if err != nil || crb.RoleRef.Name != "system:service-account-issuer-discovery" || crb.Subjects[0].Name != "wif-cluster-sync" {
		t.Fatalf("cluster sync binding: %v %+v", err, crb)
	}
	if out, err := exec.Command(wifBin, append(args, "--help")...).CombinedOutput(); err != nil {
		t.Fatalf("wif refuses the chart's cluster sync args %v: %v\n%s", args, err, out)
	}
	objs2 = append(objs2, objs3...)

	// wif controller: its RBAC and args the binary accepts.
	mustHelm("upgrade", "wif", chart, "--set", values+",serve.store=postgres://db.example/wif,serve.replicas=3,controller.enabled=true,controller.clientID="+agentID+",controller.watchNamespaces={team-a,team-b}")
	objs4 := manifestObjects(t, mustHelm("get", "manifest", "wif"))
	ctrlDep, err := k.AppsV1().Deployments(ns).Get(ctx, "wif-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cargs := ctrlDep.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(cargs, "--watch-namespaces=team-a,team-b") || !slices.Contains(cargs, "--leader-election-namespace="+ns) {
		t.Fatalf("controller args: %v", cargs)
	}
	if out, err := exec.Command(wifBin, append(cargs, "--help")...).CombinedOutput(); err != nil {
		t.Fatalf("wif refuses the chart's controller args %v: %v\n%s", cargs, err, out)
	}
	if cr, err := k.RbacV1().ClusterRoles().Get(ctx, "wif-controller", metav1.GetOptions{}); err != nil || len(cr.Rules) != 5 || cr.Rules[0].APIGroups[0] != "managedidentity.azure.com" {
		t.Fatalf("controller ClusterRole: %v %+v", err, cr)
	}
	// What the controller does, allowed by the chart's RBAC as the API
	// server decides it (SubjectAccessReview), and no more than that.
	user := "system:serviceaccount:" + ns + ":wif-controller"
	for _, c := range []struct {
		group, resource, sub, verb, ns string
		want                           bool
	}{
		{"managedidentity.azure.com", "userassignedidentities", "", "watch", "", true},
		{"managedidentity.azure.com", "federatedidentitycredentials", "", "update", "team-a", true},
		{"managedidentity.azure.com", "userassignedidentities", "status", "update", "team-a", true},
		{"", "configmaps", "", "create", "team-a", true},
		{"", "secrets", "", "update", "team-a", true},
		{"", "events", "", "create", "team-a", true},
		{"coordination.k8s.io", "leases", "", "update", ns, true},
		{"coordination.k8s.io", "leases", "", "update", "team-a", false},
		{"", "secrets", "", "list", "team-a", false},
		{"managedidentity.azure.com", "userassignedidentities", "", "delete", "team-a", false},
	} {
		sar, err := k.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts"},
			ResourceAttributes: &authzv1.ResourceAttributes{Group: c.group, Resource: c.resource, Subresource: c.sub, Verb: c.verb, Namespace: c.ns}}}, metav1.CreateOptions{})
		if err != nil || sar.Status.Allowed != c.want {
			t.Errorf("controller may %s %s/%s in %q: %v (want %v): %v", c.verb, c.resource, c.sub, c.ns, sar.Status.Allowed, c.want, err)
		}
	}
	// The webhook resolves wif.io/identity references: it reads identities.
	if sar, err := k.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: "system:serviceaccount:" + ns + ":wif-webhook", ResourceAttributes: &authzv1.ResourceAttributes{Group: "managedidentity.azure.com",
			Resource: "userassignedidentities", Verb: "get", Namespace: "team-a"}}}, metav1.CreateOptions{}); err != nil || !sar.Status.Allowed {
		t.Errorf("the webhook may not read identities: %v %+v", err, sar.Status)
	}
	objs2 = append(objs2, objs4...)

	mustHelm("uninstall", "wif", "--wait", "--timeout", "60s")
	for _, o := range append(objs, objs2...) {
		got, err := getObject(ctx, k, o)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			t.Errorf("%s %s: %v", o.kind, o.name, err)
		case o.kind == "PersistentVolumeClaim" && got.GetDeletionTimestamp() != nil && slices.Equal(got.GetFinalizers(), []string{"kubernetes.io/pvc-protection"}):
			// Deleted; the finalizer is removed by kube-controller-manager,
			// which this test does not run.
		default:
			t.Errorf("%s %s/%s is left after helm uninstall", o.kind, o.namespace, o.name)
		}
	}
}

func argsOf(d *appsv1.Deployment) []string {
	if d == nil || len(d.Spec.Template.Spec.Containers) == 0 {
		return nil
	}
	return d.Spec.Template.Spec.Containers[0].Args
}

func manifestObjects(t *testing.T, manifest string) []object {
	t.Helper()
	var out []object
	dec := scheme.Codecs.UniversalDeserializer()
	for _, doc := range strings.Split(manifest, "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		obj, gvk, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, doc)
		}
		m := obj.(metav1.Object)
		out = append(out, object{kind: gvk.Kind, namespace: m.GetNamespace(), name: m.GetName()})
	}
	return out
}

func getObject(ctx context.Context, k kubernetes.Interface, o object) (metav1.Object, error) {
	g := metav1.GetOptions{}
	var obj runtime.Object
	var err error
	switch o.kind {
	case "ClusterRole":
		obj, err = k.RbacV1().ClusterRoles().Get(ctx, o.name, g)
	case "ClusterRoleBinding":
		obj, err = k.RbacV1().ClusterRoleBindings().Get(ctx, o.name, g)
	case "Role":
		obj, err = k.RbacV1().Roles(o.namespace).Get(ctx, o.name, g)
	case "RoleBinding":
		obj, err = k.RbacV1().RoleBindings(o.namespace).Get(ctx, o.name, g)
	case "ConfigMap":
		obj, err = k.CoreV1().ConfigMaps(o.namespace).Get(ctx, o.name, g)
	case "Secret":
		obj, err = k.CoreV1().Secrets(o.namespace).Get(ctx, o.name, g)
	case "Service":
		obj, err = k.CoreV1().Services(o.namespace).Get(ctx, o.name, g)
	case "ServiceAccount":
		obj, err = k.CoreV1().ServiceAccounts(o.namespace).Get(ctx, o.name, g)
	case "PersistentVolumeClaim":
		obj, err = k.CoreV1().PersistentVolumeClaims(o.namespace).Get(ctx, o.name, g)
	case "Deployment":
		obj, err = k.AppsV1().Deployments(o.namespace).Get(ctx, o.name, g)
	case "PodDisruptionBudget":
		obj, err = k.PolicyV1().PodDisruptionBudgets(o.namespace).Get(ctx, o.name, g)
	case "MutatingWebhookConfiguration":
		obj, err = k.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, o.name, g)
	default:
		return nil, fmt.Errorf("the test does not know kind %s", o.kind)
	}
	if err != nil {
		return nil, err
	}
	return obj.(metav1.Object), nil
}
