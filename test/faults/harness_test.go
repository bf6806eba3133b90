// Package faults is the fault suite: `wif serve` replicas as real processes
// on a PostgreSQL cluster of the test's own (initdb/pg_ctl, never the
// machine's shared server), which the tests stop, start and kill under
// load, checking what callers see and what is kept.
//
// It needs PostgreSQL's server binaries (Debian's postgresql package);
// without them it skips, unless CI=true, where it fails.
package faults

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/tlsutil"
	"github.com/wif-project/wif/internal/wiftest"
)

// publicHost is the name every replica answers as, as behind a load
// balancer; the test's client dials a chosen replica for it.
const publicHost = "wif.test"

var (
	buildOnce sync.Once
	wifBin    string
	buildErr  error
)

// wifBinary builds cmd/wif once for the package.
func wifBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wif-faults-bin-")
		if err != nil {
			buildErr = err
			return
		}
		wifBin = filepath.Join(dir, "wif")
		out, err := exec.Command("go", "build", "-o", wifBin, "github.com/wif-project/wif/cmd/wif").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return wifBin
}

// pgBin finds PostgreSQL's server binaries.
func pgBin(t *testing.T) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL's initdb is not installed (CI=true: the fault suite must run); apt-get install postgresql")
		}
		t.Skip("PostgreSQL's initdb is not installed; apt-get install postgresql to run the fault suite")
	}
	return filepath.Dir(matches[len(matches)-1])
}

// cluster is a private PostgreSQL cluster: its own data directory, port
// and socket, started and stopped by the test.
type cluster struct {
	t        *testing.T
	bin, dir string
	port     int
	asUser   []string // runuser prefix when running as root
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: pgBin(t), port: freePort(t)}
	base, err := os.MkdirTemp("", "wif-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	c.dir = filepath.Join(base, "data")
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	c.run("initdb", "-D", c.dir, "-A", "trust", "-U", "postgres", "--no-sync")
	c.start()
	t.Cleanup(func() { c.stop("immediate") })
	c.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "wif")
	return c
}

func (c *cluster) run(name string, args ...string) {
	c.t.Helper()
	argv := append(append(append([]string{}, c.asUser...), filepath.Join(c.bin, name)), args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func (c *cluster) start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-w", "-l", filepath.Join(filepath.Dir(c.dir), "pg.log"), "-o",
		fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off", c.port, filepath.Dir(c.dir)), "start")
}

func (c *cluster) stop(mode string) {
	argv := append(append(append([]string{}, c.asUser...), filepath.Join(c.bin, "pg_ctl")), "-D", c.dir, "-w", "-m", mode, "stop")
	_ = exec.Command(argv[0], argv[1:]...).Run()
}

// newDatabase creates an empty database and returns its URL.
func (c *cluster) newDatabase(name string) string {
	c.t.Helper()
	c.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", name)
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", c.port, name)
}

// fixture is what replicas share: the TLS certificate they serve, the test
// issuer their credentials trust, and the directory they load.
type fixture struct {
	t         *testing.T
	dir       string
	certFile  string
	keyFile   string
	caPool    *x509.CertPool
	issuer    *wiftest.Issuer
	issuerCA  string
	tenant    string
	clientID  string // the workload identity
	directory string // directory file
	adminSub  string // bootstrap admin's subject
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), issuer: wiftest.NewIssuer(t), tenant: directory.NewID(), clientID: directory.NewID(),
		adminSub: "system:serviceaccount:ops:admin"}
	ca, err := tlsutil.NewCA("faults CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{publicHost, "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.caPool = ca.Pool()
	f.certFile, f.keyFile = filepath.Join(f.dir, "tls.crt"), filepath.Join(f.dir, "tls.key")
	key, err := tlsutil.KeyPEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(f.certFile, tlsutil.CertPEM(cert))
	write(f.keyFile, key)
	f.issuerCA = filepath.Join(f.dir, "issuer-ca.pem")
	write(f.issuerCA, tlsutil.CertPEM(tls.Certificate{Certificate: [][]byte{f.issuer.Server.Certificate().Raw}}))
	f.directory = filepath.Join(f.dir, "directory.yaml")
	write(f.directory, []byte(fmt.Sprintf(`tenants:
- id: %s
  displayName: faults
  applications:
  - displayName: api
    identifierUris: [api://api]
  managedIdentities:
  - name: workload
    resourceGroup: rg
    clientId: %s
    federatedCredentials:
    - {name: k8s, issuer: %s, subject: "system:serviceaccount:default:workload"}
`, f.tenant, f.clientID, f.issuer.URL)))
	return f
}

// replica is one `wif serve` process.
type replica struct {
	name   string
	cmd    *exec.Cmd
	addr   string // host:port it listens on
	client *http.Client
	log    *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, once done
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startReplica starts `wif serve` on dsn and waits until it listens.
func (f *fixture) startReplica(name, dsn string, extra ...string) *replica {
	f.t.Helper()
	r := f.launch(name, dsn, extra...)
	f.waitReady(r)
	return r
}

// launch starts the process without waiting.
func (f *fixture) launch(name, dsn string, extra ...string) *replica {
	f.t.Helper()
	addrFile := filepath.Join(f.dir, name+".addr")
	_ = os.Remove(addrFile)
	args := append([]string{"serve",
		"--store", dsn, "--listen", "127.0.0.1:0", "--public-url", "https://" + publicHost,
		"--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile, "--issuer-ca-file", f.issuerCA, "--allow-private-issuers", // the issuer is on loopback
		"--directory", f.directory,
		"--bootstrap-admin-issuer", f.issuer.URL, "--bootstrap-admin-subject", f.adminSub, "--bootstrap-admin-tenant", f.tenant,
		"--audit-spool-dir", filepath.Join(f.dir, name+"-spool"),
		// The fault tests follow each exchange by its correlation id
		// through outages: a full record for each, no per-minute counts.
		"--audit-every-exchange",
		"--ready-file", addrFile, "--log-level", "info",
	}, extra...)
	cmd := exec.Command(wifBinary(f.t), args...)
	r := &replica{name: name, cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	f.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if f.t.Failed() {
			f.t.Logf("---- %s log ----\n%s", name, tail(r.log.String(), 40))
		}
	})
	r.addr = addrFile // resolved in waitReady
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for the replica's ready file and reads its address from
// its log (the ready file holds the public URL, the same for all).
func (f *fixture) waitReady(r *replica) {
	f.t.Helper()
	addrFile := r.addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(addrFile); err == nil {
			if a := listenAddress(r.log.String()); a != "" {
				r.addr = a
				break
			}
		}
		select {
		case <-r.done:
			f.t.Fatalf("%s exited: %v\n%s", r.name, r.err, tail(r.log.String(), 30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not become ready\n%s", r.name, tail(r.log.String(), 30))
		}
	}
	addr := r.addr
	r.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.caPool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

// listenAddress finds "address":"127.0.0.1:N" in the JSON log.
func listenAddress(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "token service listening" {
			a, _ := m["address"].(string)
			return a
		}
	}
	return ""
}

// kill sends SIGKILL and waits.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Kill()
	<-r.done
}

// stop sends SIGTERM (a clean stop) and waits.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop", r.name)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *replica) do(method, path string, hdr map[string]string, body io.Reader) (response, error) {
	req, err := http.NewRequest(method, "https://"+publicHost+path, body)
	if err != nil {
		return response{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}, err
}

// exchange does a federated exchange at r for the workload (or the
// bootstrap admin with scope api://wif-admin/.default), with correlation
// id corr, and returns the access token.
func (f *fixture) exchange(r *replica, clientID, subject, scope, corr string) (string, response, error) {
	form := wiftest.ExchangeForm(clientID, f.issuer.Mint(f.t, subject, directory.DefaultAudience, time.Hour), scope)
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if corr != "" {
		hdr["client-request-id"] = corr
	}
	resp, err := r.do("POST", "/"+f.tenant+"/oauth2/v2.0/token", hdr, strings.NewReader(form.Encode()))
	if err != nil {
		return "", resp, err
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(resp.body, &tr)
	return tr.AccessToken, resp, nil
}

func (f *fixture) workloadToken(r *replica, corr string) (string, response, error) {
	return f.exchange(r, f.clientID, "system:serviceaccount:default:workload", "api://api/.default", corr)
}

// adminClientID reads the bootstrap admin identity's client id from a
// replica's admin API... it needs a token to do so; it is found in the log.
func (f *fixture) adminClientID(r *replica) string {
	sc := bufio.NewScanner(strings.NewReader(r.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), "bootstrap admin identity ready") {
			return fmt.Sprint(m["client_id"])
		}
	}
	f.t.Fatalf("%s logged no bootstrap admin", r.name)
	return ""
}

func (f *fixture) adminToken(r *replica) string {
	f.t.Helper()
	tok, resp, err := f.exchange(r, f.adminClientID(r), f.adminSub, admin.AdminResource+"/.default", "")
	if err != nil || tok == "" {
		f.t.Fatalf("admin token: %v %d %s", err, resp.status, resp.body)
	}
	return tok
}

// jwksKIDs lists the kids r publishes.
func (f *fixture) jwksKIDs(r *replica) ([]string, error) {
	resp, err := r.do("GET", "/"+f.tenant+"/discovery/v2.0/keys", nil, nil)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(resp.body, &set); err != nil {
		return nil, fmt.Errorf("JWKS %d: %v", resp.status, err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out, nil
}

// kidOf returns a JWS's kid.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64URL(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.Kid
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
