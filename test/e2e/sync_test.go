package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	syncNS         = "wif-system"
	syncSA         = "wif-cluster-sync"
	syncClientID   = "6a0c7c1e-4a0e-4f3c-9d1a-2f3e4d5c6b7a"
	rotWorkloadNS  = "payments"
	rotWorkloadSA  = "api"
	rotWorkloadCID = "0f8b9c3d-7e6a-4b5c-8d9e-1a2b3c4d5e6f"
)

// TestClusterSyncKeyRotation rotates a real kube-apiserver's service-account
// signing key the way an operator does (add the new key as a verification
// key, switch signing to it, drop the old one), each step a restart, while
// wif cluster sync keeps a pushed trusted issuer current and a workload
// exchanges its tokens without pause. The token service never fetches
// anything from the cluster (it is started without --allow-private-issuers
// and without the cluster's CA): every key it uses was pushed. Across the
// rotation no exchange fails, old tokens included.
func TestClusterSyncKeyRotation(t *testing.T) {
	needBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := startCluster(t)
	k := c.Client
	dir := t.TempDir()

	keyA := c.SAKeyFile
	keyB := filepath.Join(dir, "sa-b.key")
	b, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyB, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(b)}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, ns := range []string{syncNS, rotWorkloadNS} {
		mustCreate(t, func() error {
			_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	for ns, sa := range map[string]string{syncNS: syncSA, rotWorkloadNS: rotWorkloadSA} {
		mustCreate(t, func() error {
			_, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
			return err
		})
	}
	// The agent reads the issuer's keys with its own service account, as
	// the chart binds it.
	mustCreate(t, func() error {
		_, err := k.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "wif-cluster-sync"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: syncSA, Namespace: syncNS}},
		}, metav1.CreateOptions{})
		return err
	})
	raw, err := k.RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kidA := singleKID(t, raw)

	// The directory: the agent's identity and the workload's, both trusting
	// the cluster's issuer, whose pushed trusted issuer starts with today's
	// keys (what an admin gives wif issuer-trust create --jwks-file): the
	// agent's own token is verified with them.
	doc := fmt.Sprintf(`tenants:
- id: %s
  displayName: e2e
  applications:
  - displayName: wif-admin
    identifierUris: [api://wif-admin]
  - displayName: e2e-api
    identifierUris: [api://e2e-api]
    requestedAccessTokenVersion: 2
  trustedIssuers:
  - name: cluster
    issuer: %s
    keySource: pushed
    pushClientId: %s
    jwks: %s
  managedIdentities:
  - name: cluster-sync
    resourceGroup: wif-system
    clientId: %s
    federatedCredentials:
    - {name: kubernetes, issuer: %q, subject: "system:serviceaccount:%s:%s"}
  - name: payments-api
    resourceGroup: payments
    clientId: %s
    federatedCredentials:
    - {name: kubernetes, issuer: %q, subject: "system:serviceaccount:%s:%s"}
`, e2eTenant, c.URL, syncClientID, raw, syncClientID, c.URL, syncNS, syncSA, rotWorkloadCID, c.URL, rotWorkloadNS, rotWorkloadSA)
	dirFile := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(dirFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	serveReady, serveCA := filepath.Join(dir, "serve.ready"), filepath.Join(dir, "serve-ca.pem")
	serve := start(t, dir, "wif-serve", wifBin, "serve", "--listen", "127.0.0.1:0", "--store", "sqlite:"+filepath.Join(dir, "wif.db"),
		"--tls-self-signed", "--tls-ca-out", serveCA, "--directory", dirFile, "--ready-file", serveReady, "--log-level", "debug")
	authority := readyFile(t, serveReady, serve, 30*time.Second)
	// Token files, as the kubelet keeps them: the agent's federated token
	// (audience api://AzureADTokenExchange) and its API server token.
	mint := func(ns, sa string, aud ...string) (string, error) {
		exp := int64(3600)
		tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: aud, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return tr.Status.Token, nil
	}
	agentFed, agentAPI := filepath.Join(dir, "agent-fed-token"), filepath.Join(dir, "agent-api-token")
	refreshAgentTokens := func() {
		t.Helper()
		fed, err := mint(syncNS, syncSA, "api://AzureADTokenExchange")
		if err != nil {
			t.Fatal(err)
		}
		api, err := mint(syncNS, syncSA)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "agent-fed-token", []byte(fed))
		writeFile(t, dir, "agent-api-token", []byte(api))
	}
	refreshAgentTokens()
	syncer := startWithEnv(t, dir, "wif-cluster-sync", []string{"AZURE_CLIENT_ID=" + syncClientID, "AZURE_FEDERATED_TOKEN_FILE=" + agentFed, "AZURE_TENANT_ID=" + e2eTenant},
		wifBin, "cluster", "sync", "--trusted-issuer", "cluster", "--interval", "300ms",
		"--api-server", c.URL, "--api-server-ca-file", c.CAFile, "--api-server-token-file", agentAPI,
		"--server", authority, "--ca-file", serveCA)
	waitLog(t, syncer, 30*time.Second, "cluster sync:", kidA)

	// The workload: fresh tokens as the kubelet would mint them (when the
	// API server answers), each exchanged at once, and the oldest token
	// exchanged again and again.
	pem, _ := os.ReadFile(serveCA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	exchange := func(tok string) error {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {rotWorkloadCID}, "scope": {"api://e2e-api/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tok}}
		resp, err := hc.PostForm(authority+"/"+e2eTenant+"/oauth2/v2.0/token", form)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	}
	first, err := mint(rotWorkloadNS, rotWorkloadSA, "api://AzureADTokenExchange")
	if err != nil {
		t.Fatal(err)
	}
	if err := exchange(first); err != nil {
		t.Fatalf("the first exchange: %v", err)
	}
	var (
		mu       sync.Mutex
		failures []string
		okByKID  = map[string]int{}
		total    atomic.Int64
		stop     = make(chan struct{})
		loopDone = make(chan struct{})
	)
	go func() {
		defer close(loopDone)
		latest := first
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if tok, err := mint(rotWorkloadNS, rotWorkloadSA, "api://AzureADTokenExchange"); err == nil {
				latest = tok
			}
			for _, tok := range []string{latest, first} {
				total.Add(1)
				err := exchange(tok)
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("kid %s: %v", headerKID(tok), err))
				} else {
					okByKID[headerKID(tok)]++
				}
				mu.Unlock()
			}
		}
	}()

	// 1. Publish B beside A (still signing with A); the agent pushes both.
	c.restartAPIServer(t, keyA, keyA, keyB)
	raw, err = k.RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kidB := otherKID(t, raw, kidA)
	waitLog(t, syncer, 30*time.Second, "pushed keys", kidA+","+kidB)
	// 2. Sign with B; A still verifies.
	c.restartAPIServer(t, keyB, keyA, keyB)
	time.Sleep(2 * time.Second) // exchanges of B-signed tokens
	// 3. Drop A. The kubelet would now refresh every token; the agent's
	// API token was A-signed, so mint it anew as the kubelet would.
	c.restartAPIServer(t, keyB, keyB)
	refreshAgentTokens()
	waitLog(t, syncer, 30*time.Second, "pushed keys", "retiring", kidA+" until")
	time.Sleep(2 * time.Second)
	close(stop)
	<-loopDone

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d exchanges across the rotation; successes by kid: %v", total.Load(), okByKID)
	if len(failures) > 0 {
		t.Fatalf("%d of %d exchanges failed across the rotation; first: %s", len(failures), total.Load(), failures[0])
	}
	if okByKID[kidA] == 0 || okByKID[kidB] == 0 {
		t.Fatalf("successes by kid %v: want tokens of both kid %s and kid %s exchanged", okByKID, kidA, kidB)
	}
	// After the rotation the old key is retired, not current: a token it
	// signs now (it cannot: the API server dropped it) would verify only
	// until the overlap ends. The agent's own push rights did not need any
	// admin role.
	if err := exchange(first); err != nil {
		t.Fatalf("the first (A-signed) token after the rotation, within the overlap: %v", err)
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return p
}

func singleKID(t *testing.T, jwks []byte) string {
	t.Helper()
	kids := kidsOf(t, jwks)
	if len(kids) != 1 {
		t.Fatalf("the API server publishes kids %v, want one", kids)
	}
	return kids[0]
}

func otherKID(t *testing.T, jwks []byte, not string) string {
	t.Helper()
	kids := kidsOf(t, jwks)
	if len(kids) != 2 {
		t.Fatalf("the API server publishes kids %v, want two", kids)
	}
	for _, k := range kids {
		if k != not {
			return k
		}
	}
	t.Fatalf("kids %v", kids)
	return ""
}

func kidsOf(t *testing.T, jwks []byte) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

func headerKID(tok string) string {
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "?"
	}
	var hdr struct {
		KID string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.KID
}

// waitLog waits until a line of p's log holds every one of parts.
func waitLog(t *testing.T, p *process, timeout time.Duration, parts ...string) {
	t.Helper()
	waitFor(t, "log line with "+strings.Join(parts, " and "), timeout, []*process{p}, func() error {
		data, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			all := true
			for _, part := range parts {
				all = all && strings.Contains(line, part)
			}
			if all {
				return nil
			}
		}
		return fmt.Errorf("not yet in %s", p.log)
	})
}
