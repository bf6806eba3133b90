package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/wif-project/wif/internal/webhook"
	admregv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	e2eTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	e2eClientID = "5f1c7a3e-2b4d-4e8f-9a6b-0c1d2e3f4a5b"
	e2eNS       = "e2e"
	legacyNS    = "e2e-legacy"
	webhookName = "mutation.azure-workload-identity.io"
	configName  = "wif-e2e"
)

// TestKubernetes runs the webhook and the token service against a real
// kube-apiserver: every pod case of spec/webhook.md, the sidecar, and the
// seed flow (a TokenRequest token exchanged by azidentity).
func TestKubernetes(t *testing.T) {
	needBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startCluster(t)
	k := c.Client
	dir := t.TempDir()

	// The token service fetches the cluster's discovery document and keys
	// anonymously, as it would from a managed cluster's public issuer.
	mustCreate(t, func() error {
		_, err := k.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "oidc-anon"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
		}, metav1.CreateOptions{})
		return err
	})
	for _, ns := range []string{e2eNS, legacyNS, "wif-system"} {
		mustCreate(t, func() error {
			_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	// No kube-controller-manager runs, so no service account exists until we
	// make it.
	for name, ann := range map[string]map[string]string{
		"workload":     {webhook.ClientIDAnnotation: e2eClientID},
		"no-client-id": nil,
	} {
		for _, ns := range []string{e2eNS, legacyNS} {
			mustCreate(t, func() error {
				_, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
					ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}, metav1.CreateOptions{})
				return err
			})
		}
	}

	// wif serve, with a managed identity whose credential trusts the API
	// server's issuer for the workload service account.
	directory := fmt.Sprintf(`tenants:
- id: %s
  displayName: e2e
  applications:
  - displayName: e2e-api
    identifierUris: [api://e2e-api]
    requestedAccessTokenVersion: 2
    appRoles:
    - {value: Data.Read, allowedMemberTypes: [Application]}
  managedIdentities:
  - name: workload
    subscriptionId: 00000000-0000-0000-0000-000000000001
    resourceGroup: e2e
    clientId: %s
    federatedCredentials:
    - name: kubernetes
      issuer: %s
      subject: system:serviceaccount:%s:workload
  appRoleAssignments:
  - {principal: workload, resource: api://e2e-api, role: Data.Read}
`, e2eTenant, e2eClientID, c.URL, e2eNS)
	dirFile := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(dirFile, []byte(directory), 0o600); err != nil {
		t.Fatal(err)
	}
	serveReady, serveCA := filepath.Join(dir, "serve.ready"), filepath.Join(dir, "serve-ca.pem")
	serve := start(t, dir, "wif-serve", wifBin, "serve", "--listen", "127.0.0.1:0", "--store", "memory:", "--allow-private-issuers", // the API server is on loopback
		"--tls-self-signed", "--tls-ca-out", serveCA, "--directory", dirFile, "--ready-file", serveReady,
		"--issuer-ca-file", c.CAFile, "--log-level", "debug")
	authority := readyFile(t, serveReady, serve, 30*time.Second)

	// wif webhook with a managed certificate: registered by URL (no
	// kube-proxy here) with an empty caBundle that the webhook fills in.
	fail, none, ifNeeded := admregv1.Fail, admregv1.SideEffectClassNone, admregv1.IfNeededReinvocationPolicy
	timeout := int32(10)
	// startWebhook registers a configuration for the namespaces nsOp
	// (In/NotIn) the legacy namespace, and starts a webhook for it.
	startWebhook := func(name string, nsOp metav1.LabelSelectorOperator, args ...string) string {
		port := freePort(t)
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, webhook.Path)
		mustCreate(t, func() error {
			_, err := k.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admregv1.MutatingWebhookConfiguration{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Webhooks: []admregv1.MutatingWebhook{{
					Name:                    webhookName,
					ClientConfig:            admregv1.WebhookClientConfig{URL: &url},
					Rules:                   []admregv1.RuleWithOperations{{Operations: []admregv1.OperationType{admregv1.Create}, Rule: admregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
					FailurePolicy:           &fail,
					SideEffects:             &none,
					ReinvocationPolicy:      &ifNeeded,
					AdmissionReviewVersions: []string{"v1"},
					TimeoutSeconds:          &timeout,
					ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{webhook.UseLabel: "true"}},
					NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
						Key: "kubernetes.io/metadata.name", Operator: nsOp, Values: []string{legacyNS}}}},
				}},
			}, metav1.CreateOptions{})
			return err
		})
		ready := filepath.Join(dir, name+".ready")
		p := start(t, dir, name, wifBin, append([]string{"webhook", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--kubeconfig", c.Kubeconfig, "--tenant-id", e2eTenant, "--authority-host", authority,
			"--namespace", "wif-system", "--tls-hosts", "127.0.0.1", "--webhook-config-name", name,
			"--proxy-sidecar-image", "wif:e2e", "--ready-file", ready, "--log-level", "debug"}, args...)...)
		return readyFile(t, ready, p, 60*time.Second)
	}
	whURL := startWebhook(configName, metav1.LabelSelectorOpNotIn)
	// A second webhook, for the legacy namespace only: v1.5.1's token path
	// and the sidecar as a regular container (API servers before 1.29).
	startWebhook(configName+"-legacy", metav1.LabelSelectorOpIn,
		"--cert-secret-name", "wif-webhook-cert-legacy", "--token-path-legacy", "--proxy-sidecar-native=false")
	cfg, err := k.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, configName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := k.CoreV1().Secrets("wif-system").Get(ctx, "wif-webhook-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("managed certificate secret: %v", err)
	}
	if got, want := string(cfg.Webhooks[0].ClientConfig.CABundle), string(sec.Data[webhook.SecretCABundle]); got != want || got == "" {
		t.Fatalf("caBundle not patched from the managed secret:\n%q\nwant %q", got, want)
	}

	env := func(ct corev1.Container) []corev1.EnvVar { return ct.Env }
	wantEnv := func(extra ...corev1.EnvVar) []corev1.EnvVar {
		return append([]corev1.EnvVar{
			{Name: "AZURE_CLIENT_ID", Value: e2eClientID},
			{Name: "AZURE_TENANT_ID", Value: e2eTenant},
			{Name: "AZURE_FEDERATED_TOKEN_FILE", Value: "/var/run/secrets/azure/wi/token/azure-identity-token"},
			{Name: "AZURE_AUTHORITY_HOST", Value: authority + "/"},
		}, extra...)
	}
	wantMount := func(vol string) []corev1.VolumeMount {
		return []corev1.VolumeMount{{Name: vol, ReadOnly: true, MountPath: "/var/run/secrets/azure/wi"}}
	}
	exp, mode := int64(3600), int32(420)
	wantVolume := func(vol string) []corev1.Volume {
		return []corev1.Volume{{Name: vol, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "api://AzureADTokenExchange", ExpirationSeconds: &exp, Path: "token/azure-identity-token"}}},
			DefaultMode: &mode}}}}
	}
	labelled := func(name string, mod func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{webhook.UseLabel: "true"}},
			Spec:       corev1.PodSpec{ServiceAccountName: "workload", Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		}
		if mod != nil {
			mod(p)
		}
		return p
	}
	// create retries while the API server has not yet seen the patched
	// caBundle (its webhook configuration cache lags the update).
	create := func(t *testing.T, p *corev1.Pod) (*corev1.Pod, error) {
		t.Helper()
		var got *corev1.Pod
		var err error
		ns := p.Namespace
		if ns == "" {
			ns = e2eNS
		}
		for i := 0; i < 100; i++ {
			got, err = k.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
				return got, err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return got, err
	}
	mustPod := func(t *testing.T, p *corev1.Pod) *corev1.Pod {
		t.Helper()
		got, err := create(t, p)
		if err != nil {
			t.Fatalf("create pod: %v", err)
		}
		return stripServiceAccountVolume(got)
	}
	check := func(t *testing.T, what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
		}
	}

	var plain *corev1.Pod
	t.Run("plain labelled pod", func(t *testing.T) {
		plain = mustPod(t, labelled("plain", nil))
		vol := webhook.VolumeName("plain")
		check(t, "env", env(plain.Spec.Containers[0]), wantEnv())
		check(t, "mounts", plain.Spec.Containers[0].VolumeMounts, wantMount(vol))
		check(t, "volumes", plain.Spec.Volumes, wantVolume(vol))
		if w := c.takeWarnings(); len(w) != 0 {
			t.Errorf("warnings %q for a pod whose service account names its client id", w)
		}
	})
	t.Run("generateName without namespace", func(t *testing.T) {
		p := labelled("", nil)
		p.GenerateName = "gen-"
		got := mustPod(t, p)
		vol := webhook.VolumeName("gen- (prefix)")
		if !strings.HasPrefix(got.Name, "gen-") || got.Namespace != e2eNS {
			t.Errorf("pod %s/%s", got.Namespace, got.Name)
		}
		check(t, "env", env(got.Spec.Containers[0]), wantEnv())
		check(t, "mounts", got.Spec.Containers[0].VolumeMounts, wantMount(vol))
		check(t, "volumes", got.Spec.Volumes, wantVolume(vol))
	})
	t.Run("skip-containers", func(t *testing.T) {
		got := mustPod(t, labelled("skip", func(p *corev1.Pod) {
			p.Annotations = map[string]string{webhook.SkipContainersAnnotation: "istio-proxy;log"}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "busybox"}, corev1.Container{Name: "log", Image: "busybox"})
		}))
		vol := webhook.VolumeName("skip")
		check(t, "app env", env(got.Spec.Containers[0]), wantEnv())
		check(t, "app mounts", got.Spec.Containers[0].VolumeMounts, wantMount(vol))
		for _, ct := range got.Spec.Containers[1:] {
			check(t, ct.Name+" env", ct.Env, []corev1.EnvVar(nil))
			check(t, ct.Name+" mounts", ct.VolumeMounts, []corev1.VolumeMount(nil))
		}
		check(t, "volumes", got.Spec.Volumes, wantVolume(vol))
	})
	t.Run("init containers", func(t *testing.T) {
		got := mustPod(t, labelled("init", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "busybox"}}
		}))
		vol := webhook.VolumeName("init")
		check(t, "init env", env(got.Spec.InitContainers[0]), wantEnv())
		check(t, "init mounts", got.Spec.InitContainers[0].VolumeMounts, wantMount(vol))
		check(t, "app env", env(got.Spec.Containers[0]), wantEnv())
	})
	t.Run("own AZURE_CLIENT_ID kept", func(t *testing.T) {
		got := mustPod(t, labelled("own-client-id", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "AZURE_CLIENT_ID", Value: "my-own"}}
		}))
		check(t, "env", env(got.Spec.Containers[0]), append([]corev1.EnvVar{{Name: "AZURE_CLIENT_ID", Value: "my-own"}}, wantEnv()[1:]...))
	})
	t.Run("service account created just before its pod", func(t *testing.T) {
		// Likely not in the informer's cache yet: the direct read serves it.
		if _, err := k.CoreV1().ServiceAccounts(e2eNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: "late", Annotations: map[string]string{webhook.ClientIDAnnotation: e2eClientID}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := mustPod(t, labelled("late", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "late" }))
		check(t, "env", env(got.Spec.Containers[0]), wantEnv())
	})
	t.Run("bad expiration denied", func(t *testing.T) {
		_, err := create(t, labelled("bad-expiration", func(p *corev1.Pod) {
			p.Annotations = map[string]string{webhook.TokenExpirationAnnotation: "100"}
		}))
		want := `admission webhook "mutation.azure-workload-identity.io" denied the request: token expiration 100 not valid. Expected value to be between 3600 and 86400`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v\nwant it to contain %q", err, want)
		}
	})
	t.Run("unlabelled pod untouched", func(t *testing.T) {
		p := labelled("unlabelled", nil)
		p.Labels = nil
		got := mustPod(t, p)
		check(t, "env", got.Spec.Containers[0].Env, []corev1.EnvVar(nil))
		check(t, "mounts", got.Spec.Containers[0].VolumeMounts, []corev1.VolumeMount(nil))
		check(t, "volumes", got.Spec.Volumes, []corev1.Volume(nil))
	})
	t.Run("missing client-id admitted with a warning", func(t *testing.T) {
		c.takeWarnings()
		got := mustPod(t, labelled("no-client-id", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "no-client-id" }))
		check(t, "env", env(got.Spec.Containers[0]), wantEnv()[1:])
		want := "service account e2e/no-client-id has no azure.workload.identity/client-id annotation, so AZURE_CLIENT_ID is not injected: the Azure SDK cannot tell which identity to use; annotate the service account with the managed identity's client id"
		check(t, "warnings", c.takeWarnings(), []string{want})
	})
	t.Run("doctor --pod", func(t *testing.T) {
		// wif doctor, run with a kubeconfig against the pods above: the
		// injected one passes; the unlabelled one and the one whose service
		// account has no client id fail with the reason and the fix.
		type check struct{ Section, Name, Status, Detail, Fix string }
		doctorPod := func(pod string) (map[string]check, bool) {
			t.Helper()
			cmd := exec.CommandContext(ctx, wifBin, "doctor", "--pod", pod, "-n", e2eNS, "--kubeconfig", c.Kubeconfig, "-o", "json")
			out, err := cmd.Output()
			var rep struct {
				Checks []check
				OK     bool
			}
			if jerr := json.Unmarshal(out, &rep); jerr != nil {
				t.Fatalf("doctor --pod %s: %v %v\n%s", pod, err, jerr, out)
			}
			if rep.OK != (err == nil) {
				t.Fatalf("doctor --pod %s: ok=%v but exit %v", pod, rep.OK, err)
			}
			m := map[string]check{}
			for _, c := range rep.Checks {
				m[c.Name] = c
			}
			return m, rep.OK
		}
		mustPod(t, labelled("doctor-ok", nil))
		unl := labelled("doctor-unlabelled", nil)
		unl.Labels = nil
		mustPod(t, unl)
		mustPod(t, labelled("doctor-no-client-id", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "no-client-id" }))
		c.takeWarnings()
		if m, ok := doctorPod("doctor-ok"); !ok || m["label"].Status != "pass" || m["service account"].Status != "pass" || m["injected"].Status != "pass" {
			t.Errorf("plain: %+v", m)
		}
		m, ok := doctorPod("doctor-unlabelled")
		if ok || m["label"].Status != "fail" || !strings.Contains(m["label"].Fix, "spec.template.metadata.labels") ||
			m["injected"].Status != "fail" || !strings.Contains(m["injected"].Detail, "not injected into container app (the pod is not labelled)") {
			t.Errorf("unlabelled: %+v", m)
		}
		m, ok = doctorPod("doctor-no-client-id")
		if ok || m["service account"].Status != "fail" || !strings.Contains(m["service account"].Fix, "kubectl annotate serviceaccount -n e2e no-client-id azure.workload.identity/client-id=") {
			t.Errorf("no-client-id: %+v", m)
		}
		// Labelled after it was created: the webhook never saw it.
		late := labelled("doctor-labelled-late", nil)
		late.Labels = nil
		mustPod(t, late)
		if _, err := k.CoreV1().Pods(e2eNS).Patch(ctx, "doctor-labelled-late", "application/merge-patch+json",
			[]byte(`{"metadata":{"labels":{"azure.workload.identity/use":"true"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		m, ok = doctorPod("doctor-labelled-late")
		if ok || m["label"].Status != "pass" || m["injected"].Status != "fail" ||
			!strings.Contains(m["injected"].Detail, "matches this pod now; it was likely labelled, or the service account annotated, after it was created") ||
			m["injected"].Fix != "recreate the pod: the webhook acts only when a pod is created" {
			t.Errorf("labelled late: %+v", m)
		}
		if m, ok := doctorPod("no-such-pod"); ok || m["pod"].Status != "fail" {
			t.Errorf("no-such-pod: %+v", m)
		}
	})
	t.Run("sidecar", func(t *testing.T) {
		got := mustPod(t, labelled("sidecar", func(p *corev1.Pod) {
			p.Annotations = map[string]string{webhook.InjectProxySidecarAnnotation: "true", webhook.ProxySidecarPortAnnotation: "8123"}
			p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "busybox"}}
		}))
		// v1.30 supports native sidecars: first among the init containers,
		// restartPolicy Always, a startup probe gating what follows.
		if len(got.Spec.InitContainers) != 2 || got.Spec.InitContainers[0].Name != "azwi-proxy" {
			t.Fatalf("init containers %v: want azwi-proxy first, then migrate", names(got.Spec.InitContainers))
		}
		sc := got.Spec.InitContainers[0]
		if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways || sc.Image != "wif:e2e" ||
			!reflect.DeepEqual(append(sc.Command, sc.Args...), []string{"wif", "imds", "--listen", "127.0.0.1:8123"}) ||
			sc.StartupProbe == nil || sc.StartupProbe.HTTPGet == nil || sc.StartupProbe.HTTPGet.Port.IntValue() != 8123 {
			t.Errorf("sidecar: %+v", sc)
		}
		header := ""
		for _, e := range sc.Env {
			if e.Name == "IDENTITY_HEADER" {
				header = e.Value
			}
		}
		if len(header) != 64 {
			t.Fatalf("sidecar IDENTITY_HEADER %q: want 64 hex characters", header)
		}
		vol := webhook.VolumeName("sidecar")
		check(t, "sidecar env", sc.Env, wantEnv(corev1.EnvVar{Name: "IDENTITY_HEADER", Value: header}))
		check(t, "sidecar mounts", sc.VolumeMounts, wantMount(vol))
		appEnv := wantEnv(corev1.EnvVar{Name: "IDENTITY_ENDPOINT", Value: "http://127.0.0.1:8123/msi/token"}, corev1.EnvVar{Name: "IDENTITY_HEADER", Value: header},
			corev1.EnvVar{Name: "MSI_ENDPOINT", Value: "http://127.0.0.1:8123/msi/token"}, corev1.EnvVar{Name: "MSI_SECRET", Value: header})
		check(t, "init env", got.Spec.InitContainers[1].Env, appEnv)
		check(t, "app env", got.Spec.Containers[0].Env, appEnv)
		check(t, "containers", names(got.Spec.Containers), []string{"app"})
	})
	t.Run("legacy path and sidecar first in containers", func(t *testing.T) {
		got := mustPod(t, labelled("legacy", func(p *corev1.Pod) {
			p.Namespace = legacyNS
			p.Annotations = map[string]string{webhook.InjectProxySidecarAnnotation: "true"}
			p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "busybox"}}
		}))
		vol := webhook.VolumeName("legacy")
		legacyEnv := wantEnv()
		legacyEnv[2].Value = "/var/run/secrets/azure/tokens/azure-identity-token"
		if names := names(got.Spec.Containers); !reflect.DeepEqual(names, []string{"azwi-proxy", "app"}) {
			t.Fatalf("containers %v: want the sidecar first", names)
		}
		sc := got.Spec.Containers[0]
		if sc.RestartPolicy != nil || sc.Lifecycle == nil || sc.Lifecycle.PostStart == nil || sc.ReadinessProbe == nil {
			t.Errorf("sidecar: restartPolicy %v lifecycle %+v readiness %+v", sc.RestartPolicy, sc.Lifecycle, sc.ReadinessProbe)
		}
		header := sc.Env[len(sc.Env)-1].Value
		check(t, "sidecar env", sc.Env, append(append([]corev1.EnvVar(nil), legacyEnv...), corev1.EnvVar{Name: "IDENTITY_HEADER", Value: header}))
		check(t, "app env", got.Spec.Containers[1].Env, append(append([]corev1.EnvVar(nil), legacyEnv...),
			corev1.EnvVar{Name: "IDENTITY_ENDPOINT", Value: "http://127.0.0.1:8000/msi/token"}, corev1.EnvVar{Name: "IDENTITY_HEADER", Value: header},
			corev1.EnvVar{Name: "MSI_ENDPOINT", Value: "http://127.0.0.1:8000/msi/token"}, corev1.EnvVar{Name: "MSI_SECRET", Value: header}))
		// Init containers run before a regular sidecar: no IDENTITY_* there.
		check(t, "init env", got.Spec.InitContainers[0].Env, legacyEnv)
		check(t, "app mounts", got.Spec.Containers[1].VolumeMounts, []corev1.VolumeMount{{Name: vol, ReadOnly: true, MountPath: "/var/run/secrets/azure/tokens"}})
		check(t, "volumes", got.Spec.Volumes, []corev1.Volume{{Name: vol, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "api://AzureADTokenExchange", ExpirationSeconds: &exp, Path: "azure-identity-token"}}},
			DefaultMode: &mode}}}})
	})
	t.Run("host network with redirect denied", func(t *testing.T) {
		_, err := create(t, labelled("hostnet", func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Annotations = map[string]string{webhook.InjectProxySidecarAnnotation: "true", webhook.ProxySidecarRedirectAnnotation: "true"}
		}))
		want := `denied the request: hostNetwork is set to true, cannot inject proxy sidecar`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v\nwant it to contain %q", err, want)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolFromPEM(t, sec.Data[webhook.SecretCABundle])}}, Timeout: 5 * time.Second}
		resp, err := hc.Get(whURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`wif_webhook_mutations_total{namespace="e2e",result="mutated"}`,
			`wif_webhook_mutations_total{namespace="e2e",result="denied"} 2`,
			`wif_webhook_admission_duration_seconds_count`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("cluster oidc matches the API server", func(t *testing.T) {
		// wif cluster oidc, given the API server's key, must publish what
		// the API server itself serves (same kid, same key).
		out := filepath.Join(dir, "oidc")
		cmd := exec.CommandContext(ctx, wifBin, "cluster", "oidc", "--service-account-key", c.SAKeyFile, "--issuer", c.URL, "--out", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("wif cluster oidc: %v\n%s", err, b)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool()}}, Timeout: 5 * time.Second}
		fetch := func(path string) map[string]any {
			resp, err := hc.Get(c.URL + path) // anonymously, as the token service does
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: %s %v", path, resp.Status, err)
			}
			return m
		}
		var ours map[string]any
		if err := json.Unmarshal(mustRead(t, filepath.Join(out, "openid", "v1", "jwks")), &ours); err != nil {
			t.Fatal(err)
		}
		theirs := fetch("/openid/v1/jwks")
		if !reflect.DeepEqual(ours, theirs) {
			t.Errorf("JWKS differs from the API server's:\nours   %v\ntheirs %v", ours, theirs)
		}
		var disc map[string]any
		if err := json.Unmarshal(mustRead(t, filepath.Join(out, ".well-known", "openid-configuration")), &disc); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(disc, fetch("/.well-known/openid-configuration")) {
			t.Errorf("discovery document differs from the API server's:\nours   %v\ntheirs %v", disc, fetch("/.well-known/openid-configuration"))
		}
	})

	t.Run("token exchange with a TokenRequest token", func(t *testing.T) {
		if plain == nil {
			t.Skip("the plain pod was not created")
		}
		exp := int64(3600)
		tr, err := k.CoreV1().ServiceAccounts(e2eNS).CreateToken(ctx, "workload", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			Audiences: []string{"api://AzureADTokenExchange"}, ExpirationSeconds: &exp,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: plain.Name, UID: plain.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest: %v", err)
		}
		claims := jwtClaims(t, tr.Status.Token)
		if claims["iss"] != c.URL || claims["sub"] != "system:serviceaccount:e2e:workload" {
			t.Fatalf("service account token: iss %v sub %v", claims["iss"], claims["sub"])
		}
		tokenFile := filepath.Join(dir, "azure-identity-token")
		if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		pool := poolFromPEM(t, mustRead(t, serveCA))
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientID: e2eClientID, TenantID: e2eTenant, TokenFilePath: tokenFile, DisableInstanceDiscovery: true,
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: authority + "/"},
				Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://e2e-api/.default"}})
		if err != nil {
			t.Fatalf("exchange at wif: %v", err)
		}
		at := jwtClaims(t, tok.Token)
		if at["tid"] != e2eTenant || at["azp"] != e2eClientID {
			t.Errorf("access token claims: tid %v azp %v (all: %v)", at["tid"], at["azp"], at)
		}
		if roles, _ := at["roles"].([]any); len(roles) != 1 || roles[0] != "Data.Read" {
			t.Errorf("access token roles %v, want [Data.Read]", at["roles"])
		}
		if time.Until(tok.ExpiresOn) < 30*time.Minute {
			t.Errorf("token expires on %s", tok.ExpiresOn)
		}
	})
	_ = serve
}

func mustCreate(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func poolFromPEM(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in PEM")
	}
	return p
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// stripServiceAccountVolume removes what the ServiceAccount admission plugin
// adds (the kube-api-access-* projected volume and its mounts), so the
// assertions can compare the webhook's part exactly.
func stripServiceAccountVolume(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	isAPIAccess := func(name string) bool { return strings.HasPrefix(name, "kube-api-access-") }
	var vols []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if !isAPIAccess(v.Name) {
			vols = append(vols, v)
		}
	}
	p.Spec.Volumes = vols
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			var ms []corev1.VolumeMount
			for _, m := range list[i].VolumeMounts {
				if !isAPIAccess(m.Name) {
					ms = append(ms, m)
				}
			}
			list[i].VolumeMounts = ms
		}
	}
	return p
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
