package devenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/issuer"
)

// TestEndToEnd runs the built programs as a user would: `wif dev` as a
// process, the example consumer as another process with the environment
// from <state-dir>/env, then a restart on the same state directory.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wif and the consumer as processes")
	}
	bin := t.TempDir()
	wif, consumer := filepath.Join(bin, "wif"), filepath.Join(bin, "consumer")
	build(t, wif, "./cmd/wif")
	build(t, consumer, "./examples/consumer")

	state := filepath.Join(t.TempDir(), "state")
	const lifetime = 5 * time.Second
	args := []string{"dev", "--random-ports", "--state-dir", state, "--token-file-lifetime", lifetime.String()}

	// First start.
	dev := startDev(t, wif, args)
	env := waitEnv(t, state, dev)
	t.Logf("wif dev ready after %s (process start to env file)", dev.readyAfter)

	// The consumer gets a token and a 200 from the demo API.
	if env["WIF_GATEWAY_URL"] == "" {
		t.Fatal("the env file has no WIF_GATEWAY_URL")
	}
	out := runConsumer(t, consumer, env)
	// The consumer calls WIF_GATEWAY_URL: the demo API behind the gateway.
	if !strings.Contains(out, "200 OK "+env["WIF_GATEWAY_URL"]+"\n") || !strings.Contains(out, `"roles":["Data.Read"]`) || !strings.Contains(out, env["AZURE_CLIENT_ID"]) {
		t.Fatalf("consumer output:\n%s", out)
	}

	// Rotation: watch the token file while the consumer, exchanging the
	// current file on every call, keeps calling for a few lifetimes.
	watch := watchTokenFile(t, env["AZURE_FEDERATED_TOKEN_FILE"])
	out = runConsumer(t, consumer, env, "--every", "1s", "--count", "14", "--fresh")
	toks := watch.stop()
	if n := strings.Count(out, "200 OK"); n != 14 {
		t.Errorf("consumer got %d answers 200 of 14:\n%s", n, out)
	}
	if len(toks) < 3 {
		t.Fatalf("saw %d distinct tokens in the file over 14 s with %s tokens; want at least 3", len(toks), lifetime)
	}
	for i := 1; i < len(toks); i++ {
		prev, next := toks[i-1], toks[i]
		// iat is whole seconds: allow one second of truncation.
		if limit := prev.Claims.IssuedAt + int64(lifetime*8/10/time.Second) + 1; next.Claims.IssuedAt > limit {
			t.Errorf("token %d (iat %d) replaced token %d (iat %d, exp %d) after 80%% of its lifetime", i, next.Claims.IssuedAt, i-1, prev.Claims.IssuedAt, prev.Claims.Expiry)
		}
	}
	if watch.expiredSeen != "" {
		t.Errorf("the token file held an expired token: %s", watch.expiredSeen)
	}

	// Before restarting: an access token, the federated token, the ports.
	accessToken := tokenGet(t, wif, env)
	fedToken, err := os.ReadFile(env["AZURE_FEDERATED_TOKEN_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	dev.stop(t, syscall.SIGINT)
	// The env file's appearance means ready: remove the old one so the
	// restarted process is not mistaken for ready before it is.
	if err := os.Remove(filepath.Join(state, EnvFile)); err != nil {
		t.Fatal(err)
	}

	// Restart on the same state directory.
	dev2 := startDev(t, wif, args)
	env2 := waitEnv(t, state, dev2)
	defer dev2.stop(t, syscall.SIGTERM)
	t.Logf("wif dev ready after %s on restart (process start to env file)", dev2.readyAfter)
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST", "WIF_DEMO_API_URL", "WIF_GATEWAY_URL", "AZURE_FEDERATED_TOKEN_FILE"} {
		if env2[k] != env[k] {
			t.Errorf("%s changed across restart: %q → %q", k, env[k], env2[k])
		}
	}
	client := caClient(t, env2["NODE_EXTRA_CA_CERTS"])
	// The access token issued before the restart still verifies at the
	// demo API, which checks it against the token service's keys.
	if code, body := callAPI(t, client, env2["WIF_DEMO_API_URL"], accessToken); code != 200 {
		t.Errorf("access token from before the restart: %d %s", code, body)
	}
	// The federated token written before the restart still verifies
	// against the issuer's published keys.
	verifyAtIssuer(t, client, string(fedToken))
	// And the consumer works after the restart.
	if out := runConsumer(t, consumer, env2); !strings.Contains(out, "200 OK") {
		t.Errorf("consumer after restart:\n%s", out)
	}
}

func build(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

type devProc struct {
	cmd        *exec.Cmd
	stderr     *syncBuffer
	exited     chan struct{} // closed when the process has exited
	exitErr    error         // its Wait error, once exited is closed
	started    time.Time
	readyAfter time.Duration
	once       sync.Once
}

func startDev(t *testing.T, wif string, args []string) *devProc {
	t.Helper()
	p := &devProc{cmd: exec.Command(wif, args...), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Env = cleanEnv(nil)
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.once.Do(func() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		})
	})
	return p
}

// stop sends sig (SIGINT or SIGTERM) and requires a clean exit.
func (p *devProc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.once.Do(func() {
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		signalled := time.Now()
		select {
		case <-p.exited:
			t.Logf("wif dev exited %s after %v", time.Since(signalled).Round(time.Millisecond), sig)
			if p.exitErr != nil {
				t.Errorf("wif dev exited with %v after %v:\n%s", p.exitErr, sig, p.stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("wif dev did not stop within 15 s of %v:\n%s", sig, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "wif dev stopped") {
			t.Errorf("no clean-stop message:\n%s", p.stderr.String())
		}
	})
}

func waitEnv(t *testing.T, state string, p *devProc) map[string]string {
	t.Helper()
	path := filepath.Join(state, EnvFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil {
			p.readyAfter = time.Since(p.started)
			// The banner (written right after the env file) says how long
			// Start itself took.
			time.Sleep(50 * time.Millisecond)
			if i := strings.Index(p.stderr.String(), "wif dev ready in "); i >= 0 {
				line, _, _ := strings.Cut(p.stderr.String()[i:], "\n")
				t.Log(line)
			}
			return parseEnvFile(t, b)
		}
		select {
		case <-p.exited:
			t.Fatalf("wif dev exited (%v) before writing %s:\n%s", p.exitErr, path, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s:\n%s", path, p.stderr.String())
		}
	}
}

// parseEnvFile reads the export lines back, undoing the single quotes.
func parseEnvFile(t *testing.T, b []byte) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || !strings.HasPrefix(line, "export ") || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
			t.Fatalf("env file line %q is not export NAME='value'", line)
		}
		env[k] = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
	}
	return env
}

// cleanEnv is this process's environment without anything that would change
// how the Azure SDK behaves, plus extra.
func cleanEnv(extra map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "MSAL_") || strings.HasPrefix(k, "IDENTITY_") ||
			strings.HasPrefix(k, "WIF_") || k == "SSL_CERT_FILE" || k == "MSI_ENDPOINT" {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range extra {
		out = append(out, k+"="+v)
	}
	return out
}

func runConsumer(t *testing.T, consumer string, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, consumer, args...)
	cmd.Env = cleanEnv(env)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("consumer %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

func tokenGet(t *testing.T, wif string, env map[string]string) string {
	t.Helper()
	cmd := exec.Command(wif, "token", "get", "--scope", ResourceURI+"/.default")
	cmd.Env = cleanEnv(env)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wif token get: %v\n%s", err, errOut.String())
	}
	return strings.TrimSpace(string(out))
}

type tokenWatch struct {
	path        string
	done        chan struct{}
	wg          sync.WaitGroup
	toks        []issuer.Token
	expiredSeen string
}

// watchTokenFile polls the token file, keeping each distinct token and
// noting if it ever holds an expired one.
func watchTokenFile(t *testing.T, path string) *tokenWatch {
	w := &tokenWatch{path: path, done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		last := ""
		for {
			// The time of the read, taken before it: a watcher delayed
			// after reading (a loaded machine) must not blame the file.
			at := time.Now()
			if b, err := os.ReadFile(path); err == nil && string(b) != last {
				last = string(b)
				var c issuer.Claims
				if err := decodeSegment(strings.Split(last, ".")[1], &c); err == nil {
					w.toks = append(w.toks, issuer.Token{Raw: last, Claims: c})
				}
			}
			if len(w.toks) > 0 {
				if exp := w.toks[len(w.toks)-1].Expiry(); at.After(exp) && w.expiredSeen == "" {
					w.expiredSeen = fmt.Sprintf("exp %s, read at %s", exp.Format(time.RFC3339), at.Format(time.RFC3339Nano))
				}
			}
			select {
			case <-w.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *tokenWatch) stop() []issuer.Token {
	close(w.done)
	w.wg.Wait()
	return w.toks
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func verifyAtIssuer(t *testing.T, client *http.Client, raw string) {
	t.Helper()
	var c issuer.Claims
	if err := decodeSegment(strings.Split(raw, ".")[1], &c); err != nil {
		t.Fatal(err)
	}
	var disc issuer.Discovery
	getJSONTo(t, client, strings.TrimSuffix(c.Issuer, "/")+issuer.DiscoveryPath, &disc)
	var set jose.JSONWebKeySet
	getJSONTo(t, client, disc.JWKSURI, &set)
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the issuer publishes no key %q after the restart", jws.Signatures[0].Header.KeyID)
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		t.Fatalf("federated token from before the restart does not verify: %v", err)
	}
}

func getJSONTo(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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
