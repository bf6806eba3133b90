package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/webhook"
)

var (
	uaiGVR = schema.GroupVersionResource{Group: "managedidentity.azure.com", Version: "v1api20230131", Resource: "userassignedidentities"}
	ficGVR = schema.GroupVersionResource{Group: "managedidentity.azure.com", Version: "v1api20230131", Resource: "federatedidentitycredentials"}
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

const controllerCID = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a99"

// TestControllerReconcilesASOObjects applies ASO-shaped manifests to a real
// kube-apiserver with wif's CRDs and checks what wif controller makes of
// them: the directory objects, status, ConfigMaps, exchanges with the
// service account's real tokens, edits, deletion, refusals, reconcile
// policies, scope, and a kill -9 mid-reconcile.
func TestControllerReconcilesASOObjects(t *testing.T) {
	needBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(t)
	k := c.Client
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// The CRDs shipped in deploy/crds, as a cluster without ASO installs them.
	for _, f := range []string{"managedidentity.azure.com_userassignedidentities.yaml", "managedidentity.azure.com_federatedidentitycredentials.yaml"} {
		var obj map[string]any
		if err := yaml.Unmarshal(mustRead(t, filepath.Join("..", "..", "deploy", "crds", f)), &obj); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD %s: %v", f, err)
		}
	}
	waitFor(t, "CRDs established", 30*time.Second, c.procs, func() error {
		for _, r := range []schema.GroupVersionResource{uaiGVR, ficGVR} {
			if _, err := dyn.Resource(r).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	mustCreate(t, func() error {
		_, err := k.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "oidc-anon"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
			Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
		}, metav1.CreateOptions{})
		return err
	})
	for _, ns := range []string{"wif-system", "team-a", "other"} {
		mustCreate(t, func() error {
			_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	for ns, sas := range map[string][]string{"wif-system": {"wif-controller"}, "team-a": {"payments", "payments-v2"}} {
		for _, sa := range sas {
			mustCreate(t, func() error {
				_, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
				return err
			})
		}
	}

	// wif serve: the controller's identity may manage identities in the
	// tenant (ManagedIdentityContributor), nothing more.
	doc := fmt.Sprintf(`tenants:
- id: %s
  displayName: e2e
  applications:
  - displayName: wif-admin
    identifierUris: [api://wif-admin]
    appRoles:
    - {id: %s, value: ManagedIdentityContributor, allowedMemberTypes: [Application]}
  - displayName: e2e-api
    identifierUris: [api://e2e-api]
    requestedAccessTokenVersion: 2
  managedIdentities:
  - name: wif-controller
    resourceGroup: wif-system
    clientId: %s
    federatedCredentials:
    - {name: kubernetes, issuer: %q, subject: "system:serviceaccount:wif-system:wif-controller"}
  appRoleAssignments:
  - {principal: wif-controller, resource: api://wif-admin, role: ManagedIdentityContributor}
`, e2eTenant, admin.RoleIDManagedIdentityContributor, controllerCID, c.URL)
	dirFile := writeFile(t, dir, "directory.yaml", []byte(doc))
	serveReady, serveCA := filepath.Join(dir, "serve.ready"), filepath.Join(dir, "serve-ca.pem")
	serve := start(t, dir, "wif-serve", wifBin, "serve", "--listen", "127.0.0.1:0", "--store", "sqlite:"+filepath.Join(dir, "wif.db"),
		"--allow-private-issuers", "--issuer-ca-file", c.CAFile, // the API server is the issuer, on loopback
		"--tls-self-signed", "--tls-ca-out", serveCA, "--directory", dirFile, "--ready-file", serveReady)
	authority := readyFile(t, serveReady, serve, 30*time.Second)

	mint := func(ns, sa string) string {
		t.Helper()
		exp := int64(3600)
		tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
			Audiences: []string{"api://AzureADTokenExchange"}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	ctrlToken := writeFile(t, dir, "controller-token", []byte(mint("wif-system", "wif-controller")))
	startController := func(name string) *process {
		return startWithEnv(t, dir, name, []string{"AZURE_CLIENT_ID=" + controllerCID, "AZURE_FEDERATED_TOKEN_FILE=" + ctrlToken, "AZURE_TENANT_ID=" + e2eTenant},
			wifBin, "controller", "--kubeconfig", c.Kubeconfig, "--watch-namespaces", "team-a", "--leader-election-namespace", "wif-system",
			"--server", authority, "--ca-file", serveCA, "--resync", "5s", "--log-level", "debug")
	}
	ctrl := startController("wif-controller")

	apply := func(gvr schema.GroupVersionResource, ns, manifest string) {
		t.Helper()
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: obj}
		ri := dyn.Resource(gvr).Namespace(ns)
		cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = ri.Create(ctx, u, metav1.CreateOptions{})
		} else if err == nil {
			u.SetResourceVersion(cur.GetResourceVersion())
			_, err = ri.Update(ctx, u, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("apply %s %s/%s: %v", gvr.Resource, ns, u.GetName(), err)
		}
	}
	ready := func(gvr schema.GroupVersionResource, ns, name, status string, contains ...string) *unstructured.Unstructured {
		t.Helper()
		var got *unstructured.Unstructured
		waitFor(t, fmt.Sprintf("%s %s/%s Ready=%s", gvr.Resource, ns, name, status), 60*time.Second, []*process{ctrl, serve}, func() error {
			u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cnd := range conds {
				m, _ := cnd.(map[string]any)
				if m["type"] != "Ready" {
					continue
				}
				msg, _ := m["message"].(string)
				if m["status"] != status {
					return fmt.Errorf("Ready=%v: %v", m["status"], msg)
				}
				for _, s := range contains {
					if !strings.Contains(msg, s) && m["reason"] != s {
						return fmt.Errorf("Ready=%v, reason %v, message %q lacks %q", m["status"], m["reason"], msg, s)
					}
				}
				got = u
				return nil
			}
			return fmt.Errorf("no Ready condition yet")
		})
		return got
	}

	// 1. An identity and its credential, as an ASO user writes them.
	apply(uaiGVR, "team-a", `apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata: {name: payments}
spec:
  location: westeurope
  owner: {name: rg-team-a}
  tags: {team: a}
  operatorSpec:
    configMaps:
      clientId: {name: payments-identity, key: clientId}
      principalId: {name: payments-identity, key: principalId}
      tenantId: {name: payments-identity, key: tenantId}
    secrets:
      clientId: {name: payments-identity-secret, key: AZURE_CLIENT_ID}
`)
	uai := ready(uaiGVR, "team-a", "payments", "True")
	clientID, _, _ := unstructured.NestedString(uai.Object, "status", "clientId")
	principalID, _, _ := unstructured.NestedString(uai.Object, "status", "principalId")
	tenantID, _, _ := unstructured.NestedString(uai.Object, "status", "tenantId")
	if len(clientID) != 36 || len(principalID) != 36 || tenantID != e2eTenant {
		t.Fatalf("status: %v", uai.Object["status"])
	}
	cm, err := k.CoreV1().ConfigMaps("team-a").Get(ctx, "payments-identity", metav1.GetOptions{})
	if err != nil || cm.Data["clientId"] != clientID || cm.Data["principalId"] != principalID || cm.Data["tenantId"] != e2eTenant {
		t.Fatalf("ConfigMap: %v %v", err, cm)
	}
	if sec, err := k.CoreV1().Secrets("team-a").Get(ctx, "payments-identity-secret", metav1.GetOptions{}); err != nil || string(sec.Data["AZURE_CLIENT_ID"]) != clientID ||
		len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Name != "payments" {
		t.Fatalf("Secret: %v %+v", err, sec)
	}
	apply(ficGVR, "team-a", fmt.Sprintf(`apiVersion: managedidentity.azure.com/v1api20230131
kind: FederatedIdentityCredential
metadata: {name: payments-k8s}
spec:
  owner: {name: payments}
  audiences: [api://AzureADTokenExchange]
  issuer: %s
  subject: system:serviceaccount:team-a:payments
`, c.URL))
	ready(ficGVR, "team-a", "payments-k8s", "True")

	pem, _ := os.ReadFile(serveCA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	exchange := func(tok string) (int, string) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {"api://e2e-api/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tok}}
		resp, err := hc.PostForm(authority+"/"+e2eTenant+"/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := exchange(mint("team-a", "payments")); st != 200 {
		t.Fatalf("exchange of the service account's token: %d %s", st, body)
	}

	// 1b. A service account names the identity instead of its client id:
	// the webhook (its handler, with the real API server) injects the
	// reconciled status.clientId; an identity not Ready denies the pod.
	for name, ref := range map[string]string{"payments-ref": "payments", "ghost-ref": "ghost"} {
		mustCreate(t, func() error {
			_, err := k.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name,
				Annotations: map[string]string{webhook.IdentityRefAnnotation: ref}}}, metav1.CreateOptions{})
			return err
		})
	}
	sas, startSAs := webhook.NewServiceAccountInformer(k, 0)
	go startSAs(ctx)
	wh, err := webhook.NewHandler(webhook.Config{TenantID: e2eTenant, AuthorityHost: authority + "/"}, sas, webhook.HandlerOptions{Identities: webhook.DynamicIdentities{Client: dyn}})
	if err != nil {
		t.Fatal(err)
	}
	admit := func(sa string) (bool, string) {
		t.Helper()
		pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team-a", Labels: map[string]string{webhook.UseLabel: "true"}},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		raw, _ := json.Marshal(pod)
		body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "team-a",
				Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", webhook.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		wh.ServeHTTP(rec, req)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("admission response: %v %s", err, rec.Body)
		}
		msg := string(out.Response.Patch)
		if out.Response.Result != nil {
			msg += out.Response.Result.Message
		}
		return out.Response.Allowed, msg
	}
	waitFor(t, "the webhook resolving wif.io/identity", 30*time.Second, nil, func() error {
		if ok, patch := admit("payments-ref"); !ok || !strings.Contains(patch, clientID) {
			return fmt.Errorf("allowed %v: %s", ok, patch)
		}
		return nil
	})
	if ok, msg := admit("ghost-ref"); ok || !strings.Contains(msg, `names identity "ghost" (wif.io/identity)`) || !strings.Contains(msg, "does not exist") {
		t.Fatalf("a reference to a missing identity: allowed %v: %s", ok, msg)
	}

	// 2. Edit the subject: the old service account is refused, the new one accepted.
	// (issuer and subject from a ConfigMap this time, as ASO allows)
	mustCreate(t, func() error {
		_, err := k.CoreV1().ConfigMaps("team-a").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "oidc"},
			Data: map[string]string{"issuer": c.URL, "subject": "system:serviceaccount:team-a:payments-v2"}}, metav1.CreateOptions{})
		return err
	})
	apply(ficGVR, "team-a", `apiVersion: managedidentity.azure.com/v1api20230131
kind: FederatedIdentityCredential
metadata: {name: payments-k8s}
spec:
  owner: {name: payments}
  audiences: [api://AzureADTokenExchange]
  issuerFromConfig: {name: oidc, key: issuer}
  subjectFromConfig: {name: oidc, key: subject}
`)
	waitFor(t, "the new subject in force", 60*time.Second, []*process{ctrl}, func() error {
		if st, body := exchange(mint("team-a", "payments-v2")); st != 200 {
			return fmt.Errorf("%d %s", st, body)
		}
		return nil
	})
	if st, body := exchange(mint("team-a", "payments")); st != 401 || !strings.Contains(body, "AADSTS700213") {
		t.Fatalf("the old subject after the edit: %d %s", st, body)
	}

	// 3. A spec that breaks a directory rule: Ready=False naming the rule.
	apply(ficGVR, "team-a", `apiVersion: managedidentity.azure.com/v1api20230131
kind: FederatedIdentityCredential
metadata: {name: payments-bad}
spec:
  owner: {name: payments}
  audiences: [api://AzureADTokenExchange]
  issuer: http://insecure.example
  subject: system:serviceaccount:team-a:payments
`)
	ready(ficGVR, "team-a", "payments-bad", "False", "issuer: must be an https URL")
	waitFor(t, "a Warning event on the refused credential", 30*time.Second, []*process{ctrl}, func() error {
		evs, err := k.CoreV1().Events("team-a").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=payments-bad"})
		if err != nil || len(evs.Items) == 0 || evs.Items[0].Reason != "DirectoryRefused" || evs.Items[0].Type != "Warning" ||
			!strings.Contains(evs.Items[0].Message, "must be an https URL") {
			return fmt.Errorf("events: %v %+v", err, evs)
		}
		return nil
	})
	if err := dyn.Resource(ficGVR).Namespace("team-a").Delete(ctx, "payments-bad", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// 4. Delete the credential: gone from the directory, the object too.
	if err := dyn.Resource(ficGVR).Namespace("team-a").Delete(ctx, "payments-k8s", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the credential deleted", 60*time.Second, []*process{ctrl}, func() error {
		if _, err := dyn.Resource(ficGVR).Namespace("team-a").Get(ctx, "payments-k8s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("object still there: %v", err)
		}
		return nil
	})
	if st, body := exchange(mint("team-a", "payments-v2")); st != 401 {
		t.Fatalf("exchange after the credential was deleted: %d %s", st, body)
	}

	// 4b. wif's extension: a claims expression, for every service account
	// of the namespace.
	apply(ficGVR, "team-a", fmt.Sprintf(`apiVersion: managedidentity.azure.com/v1api20230131
kind: FederatedIdentityCredential
metadata:
  name: payments-namespace
  annotations: {"wif.io/claims-matching-expression": "claims['sub'] matches 'system:serviceaccount:team-a:*'"}
spec:
  owner: {name: payments}
  audiences: [api://AzureADTokenExchange]
  issuer: %s
`, c.URL))
	ready(ficGVR, "team-a", "payments-namespace", "True")
	waitFor(t, "the expression in force", 60*time.Second, []*process{ctrl}, func() error {
		for _, sa := range []string{"payments", "payments-v2"} {
			if st, body := exchange(mint("team-a", sa)); st != 200 {
				return fmt.Errorf("%s: %d %s", sa, st, body)
			}
		}
		return nil
	})

	// 5. reconcile-policy: detach-on-delete leaves the identity; skip reads
	// it (and creates nothing).
	apply(uaiGVR, "team-a", `apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata:
  name: keep
  annotations: {serviceoperator.azure.com/reconcile-policy: detach-on-delete}
spec: {owner: {name: rg-team-a}}
`)
	keep := ready(uaiGVR, "team-a", "keep", "True")
	keepID, _, _ := unstructured.NestedString(keep.Object, "status", "clientId")
	if err := dyn.Resource(uaiGVR).Namespace("team-a").Delete(ctx, "keep", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the detached identity's object deleted", 60*time.Second, []*process{ctrl}, func() error {
		if _, err := dyn.Resource(uaiGVR).Namespace("team-a").Get(ctx, "keep", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	apply(uaiGVR, "team-a", `apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata:
  name: keep-view
  annotations: {serviceoperator.azure.com/reconcile-policy: skip}
spec: {azureName: keep, owner: {name: rg-team-a}}
`)
	view := ready(uaiGVR, "team-a", "keep-view", "True", "reconcile-policy skip")
	if id, _, _ := unstructured.NestedString(view.Object, "status", "clientId"); id != keepID {
		t.Fatalf("the detached identity: skip reads client id %q, want %q (it should have stayed in the directory)", id, keepID)
	}
	apply(uaiGVR, "team-a", `apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata:
  name: ghost
  annotations: {serviceoperator.azure.com/reconcile-policy: skip}
spec: {owner: {name: rg-team-a}}
`)
	ready(uaiGVR, "team-a", "ghost", "False", "NotFound")

	// 6. Scope: a namespace not watched is left alone unless an object opts in.
	apply(uaiGVR, "other", `apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata: {name: theirs}
spec: {owner: {name: rg-other}}
`)
	apply(uaiGVR, "other", `apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata:
  name: ours
  annotations: {wif.io/reconcile: "true"}
spec: {owner: {name: rg-other}}
`)
	ready(uaiGVR, "other", "ours", "True")
	theirs, err := dyn.Resource(uaiGVR).Namespace("other").Get(ctx, "theirs", metav1.GetOptions{})
	if err != nil || theirs.Object["status"] != nil || len(theirs.GetFinalizers()) != 0 {
		t.Fatalf("an object out of scope was touched: %v %v %v", err, theirs.Object["status"], theirs.GetFinalizers())
	}

	// 7. kill -9 mid-reconcile, then a new controller: it converges, with
	// each identity once (stable client ids, no duplicates).
	for i := range 5 {
		apply(uaiGVR, "team-a", fmt.Sprintf(`apiVersion: managedidentity.azure.com/v1api20230131
kind: UserAssignedIdentity
metadata: {name: batch-%d}
spec: {owner: {name: rg-batch}}
`, i))
	}
	time.Sleep(150 * time.Millisecond)
	_ = ctrl.cmd.Process.Signal(syscall.SIGKILL)
	<-ctrl.done
	ctrl = startController("wif-controller-2")
	ids := map[string]string{}
	for i := range 5 {
		u := ready(uaiGVR, "team-a", fmt.Sprintf("batch-%d", i), "True")
		id, _, _ := unstructured.NestedString(u.Object, "status", "clientId")
		for other, seen := range ids {
			if seen == id {
				t.Fatalf("batch-%d and %s share client id %s", i, other, id)
			}
		}
		ids[u.GetName()] = id
	}
	// The directory holds each once: the controller's own identity can
	// list the resource group.
	var list admin.List[admin.IdentityResource]
	ac := &admin.Client{BaseURL: authority, HTTPClient: hc, Token: func(ctx context.Context) (string, error) {
		return adminToken(t, hc, authority, mint("wif-system", "wif-controller"))
	}}
	if _, err := ac.Do(ctx, "GET", admin.IdentityPath(e2eTenant, "00000000-0000-0000-0000-000000000000", "rg-batch", ""), nil, nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Value) != 5 {
		t.Fatalf("rg-batch holds %d identities after the kill, want 5", len(list.Value))
	}
	for _, m := range list.Value {
		if ids[m.Name] != m.Properties.ClientID {
			t.Errorf("identity %s: directory client id %s, status %s", m.Name, m.Properties.ClientID, ids[m.Name])
		}
	}
}

// adminToken exchanges a service-account token for a token of the admin API.
func adminToken(t *testing.T, hc *http.Client, authority, assertion string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {controllerCID}, "scope": {"api://wif-admin/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	resp, err := hc.PostForm(authority+"/"+e2eTenant+"/oauth2/v2.0/token", form)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := yaml.Unmarshal(b, &out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("admin token: %d %s", resp.StatusCode, b)
	}
	return out.AccessToken, nil
}
