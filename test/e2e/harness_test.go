package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/tlsutil"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// process is a child process whose output goes to a log file, dumped when the
// test fails.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(t *testing.T, dir, name string, bin string, args ...string) *process {
	t.Helper()
	return startWithEnv(t, dir, name, nil, bin, args...)
}

// startWithEnv is start with more environment variables (NAME=value).
func startWithEnv(t *testing.T, dir, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.dumpLog(t, 40)
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) dumpLog(t *testing.T, lines int) {
	f, err := os.Open(p.log)
	if err != nil {
		return
	}
	defer f.Close()
	var all []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	t.Logf("---- last %d lines of %s (%s) ----\n%s", len(all), p.name, p.log, strings.Join(all, "\n"))
}

// freePort returns a loopback port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// hostAddress is a non-loopback IPv4 address of this machine, for the API
// server's --advertise-address (it refuses loopback ones).
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address on this machine for --advertise-address")
	return ""
}

// waitFor polls cond every 100 ms until it returns nil or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, procs []*process, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited: %v", what, p.name, p.err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %v", what, timeout, err)
}

// cluster is etcd + kube-apiserver running as processes on loopback.
type cluster struct {
	URL        string // https://127.0.0.1:PORT, also the service account issuer
	CA         *tlsutil.CA
	CAFile     string
	Kubeconfig string
	SAKeyFile  string // the service account signing key (RSA, PEM)
	Config     *rest.Config
	Client     *kubernetes.Clientset
	procs      []*process

	// What restartAPIServer needs.
	dir       string
	apiArgs   []string
	apiserver *process
	adminTok  string
	restarts  int

	warnMu   sync.Mutex
	warnings []string
}

// HandleWarningHeader collects the admission warnings the API server returns.
func (c *cluster) HandleWarningHeader(code int, agent, text string) {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	c.warnings = append(c.warnings, text)
}

// takeWarnings returns and clears the collected warnings.
func (c *cluster) takeWarnings() []string {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	w := c.warnings
	c.warnings = nil
	return w
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	advertise := hostAddress(t)

	etcdPort, peerPort := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := start(t, dir, "etcd", etcdBin,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL, "--log-level", "warn")
	waitFor(t, "etcd", 30*time.Second, []*process{etcd}, func() error {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("etcd /health: %s", resp.Status)
		}
		return nil
	})

	ca, err := tlsutil.NewCA("wif-e2e-kube-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.Issue([]string{"127.0.0.1", advertise, "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := tlsutil.KeyPEM(serving)
	if err != nil {
		t.Fatal(err)
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	token := randomToken(t)
	files := map[string][]byte{
		"ca.pem":          ca.CertPEM,
		"serving.pem":     tlsutil.CertPEM(serving),
		"serving-key.pem": keyPEM,
		"sa.key":          pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		"tokens.csv":      []byte(token + `,e2e-admin,e2e-admin,"system:masters"` + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	apiArgs := []string{"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--advertise-address", advertise,
		"--tls-cert-file", filepath.Join(dir, "serving.pem"), "--tls-private-key-file", filepath.Join(dir, "serving-key.pem"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", url,
		// The discovery document would name the advertise address in
		// jwks_uri; the server listens on loopback only.
		"--service-account-jwks-uri", url + "/openid/v1/jwks",
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir", filepath.Join(dir, "apiserver-certs"),
		"--v", "1"}
	saKeyFile := filepath.Join(dir, "sa.key")
	apiserver := start(t, dir, "kube-apiserver", apiserverBin, append(slices.Clone(apiArgs), saKeyArgs(saKeyFile, saKeyFile)...)...)
	c := &cluster{URL: url, CA: ca, CAFile: filepath.Join(dir, "ca.pem"), SAKeyFile: saKeyFile, procs: []*process{etcd, apiserver},
		dir: dir, apiArgs: apiArgs, apiserver: apiserver, adminTok: token}
	c.Config = &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM},
		QPS: 100, Burst: 200, WarningHandler: c}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t)
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, url, c.CAFile, token)
	if err := os.WriteFile(c.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func randomToken(t *testing.T) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// readyFile waits for a process's --ready-file and returns its content.
func readyFile(t *testing.T, path string, p *process, timeout time.Duration) string {
	t.Helper()
	var content string
	waitFor(t, p.name, timeout, []*process{p}, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		content = strings.TrimSpace(string(b))
		return nil
	})
	return content
}

var _ = context.Background

// saKeyArgs are the API server's service-account key flags: the key that
// signs tokens and the keys that verify them (and are published).
func saKeyArgs(signing string, verifying ...string) []string {
	args := []string{"--service-account-signing-key-file", signing}
	for _, k := range verifying {
		args = append(args, "--service-account-key-file", k)
	}
	return args
}

// waitReady waits for the API server's /readyz.
func (c *cluster) waitReady(t *testing.T) {
	t.Helper()
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool()}}, Timeout: 5 * time.Second}
	waitFor(t, "kube-apiserver", 90*time.Second, c.procs, func() error {
		req, _ := http.NewRequest("GET", c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.adminTok)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// restartAPIServer stops the API server and starts it again on the same
// address with other service-account keys, as an operator rotating the
// signing key does.
func (c *cluster) restartAPIServer(t *testing.T, signing string, verifying ...string) {
	t.Helper()
	old := c.apiserver
	_ = old.cmd.Process.Signal(os.Interrupt)
	select {
	case <-old.done:
	case <-time.After(30 * time.Second):
		_ = old.cmd.Process.Kill()
		<-old.done
	}
	c.restarts++
	c.apiserver = start(t, c.dir, fmt.Sprintf("kube-apiserver-%d", c.restarts), apiserverBin, append(slices.Clone(c.apiArgs), saKeyArgs(signing, verifying...)...)...)
	c.procs = []*process{c.procs[0], c.apiserver}
	c.waitReady(t)
}
