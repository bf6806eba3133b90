package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the writers of a running command.
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

// TestDevShowsRefusals runs `wif dev` as a user does: its banner names the
// command that runs this wif, a refused exchange appears in its output as
// one line with the code, the reason and the command to explain it, and a
// second `wif dev` on the same state directory refuses without harming the
// first.
func TestDevShowsRefusals(t *testing.T) {
	dir := t.TempDir()
	var errOut syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	noEnv := func(string) (string, bool) { return "", false }
	go func() {
		done <- RunWithEnv(ctx, Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut},
			[]string{"dev", "--state-dir", dir, "--random-ports", "--in-memory"}, noEnv)
	}()
	defer func() {
		cancel()
		<-done
	}()
	envFile := filepath.Join(dir, "env")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(envFile); err == nil && strings.Contains(errOut.String(), "Paste into another shell") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wif dev not ready:\n%s", errOut.String())
		}
	}
	// A test binary is built by go test into a go-build directory, as go
	// run builds wif.
	if !strings.Contains(errOut.String(), "\n  go run ./cmd/wif token get --scope api://provider-api/.default --decode\n") {
		t.Errorf("banner:\n%s", errOut.String())
	}
	// The console: its URL printed, its page served, its API answering
	// with the session token (the browser tests drive it fully).
	conRe := regexp.MustCompile(`Console:\n  (http://127\.0\.0\.1:\d+)/#token=([A-Za-z0-9_-]+)\n`)
	var m []string
	for deadline := time.Now().Add(5 * time.Second); m == nil; time.Sleep(20 * time.Millisecond) {
		if m = conRe.FindStringSubmatch(errOut.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no console URL in wif dev's output:\n%s", errOut.String())
		}
	}
	req, _ := http.NewRequest("GET", m[1]+"/api/tenants", nil)
	req.Header.Set("X-Wif-Console-Token", m[2])
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the dev console's API: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	env := map[string]string{}
	data, _ := os.ReadFile(envFile)
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = strings.Trim(v, "'")
		}
	}
	_, _, err := run(t, env, "", "token", "get", "--scope", "api://no-such-api/.default")
	if err == nil {
		t.Fatal("an unknown resource was granted")
	}
	re := regexp.MustCompile(`\d\d:\d\d:\d\d refused: AADSTS500011 invalid_resource client ` + env["AZURE_CLIENT_ID"] +
		` sub "system:serviceaccount:default:demo": .*\(wif audit explain [0-9a-f-]{36}\)\n`)
	for deadline := time.Now().Add(5 * time.Second); !re.MatchString(errOut.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal line in wif dev's output:\n%s", errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "token issued") {
		t.Errorf("successes are logged by default:\n%s", errOut.String())
	}

	// A second wif dev on the same directory.
	_, _, err = run(t, noEnv2(), "", "dev", "--state-dir", dir, "--random-ports", "--in-memory")
	if err == nil || !strings.Contains(err.Error(), "wif dev is already running on this state directory") {
		t.Fatalf("second wif dev: %v", err)
	}
	if _, err := os.Stat(envFile); err != nil {
		t.Fatalf("the second wif dev removed the first's env file: %v", err)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("context ended early")
	}
}

func noEnv2() map[string]string { return map[string]string{} }

func TestCommandFor(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wif")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "wif")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	found := func(p string) func(string) (string, error) {
		return func(string) (string, error) { return p, nil }
	}
	missing := func(string) (string, error) { return "", errors.New("not found") }
	for _, tc := range []struct {
		exe  string
		look func(string) (string, error)
		want string
	}{
		{"/tmp/go-build123/b001/exe/wif", missing, "go run ./cmd/wif"},
		{bin, found(bin), "wif"},
		{bin, found(other), bin},
		{bin, missing, bin},
	} {
		if got := commandFor(tc.exe, tc.look); got != tc.want {
			t.Errorf("commandFor(%q) = %q, want %q", tc.exe, got, tc.want)
		}
	}
}
