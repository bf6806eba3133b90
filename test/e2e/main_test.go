// Package e2e holds tests that start real things as processes: etcd and
// kube-apiserver (built by hack/kube-bin.sh), and the wif binary.
//
// Plain `go test ./...` on a machine without the control-plane binaries skips
// these tests with a message saying how to get them; with CI=true or
// WIF_E2E=1 a missing binary is a failure.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Binaries found or built by TestMain.
var (
	wifBin, apiserverBin, etcdBin string
	skipReason                    string
)

const kubeVersion = "v1.30.14"

func required() bool { return os.Getenv("CI") == "true" || os.Getenv("WIF_E2E") == "1" }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	cache := os.Getenv("WIF_E2E_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "wif-e2e")
	}
	apiserverBin = envOr("WIF_KUBE_APISERVER", filepath.Join(cache, "bin", "kube-apiserver-"+kubeVersion))
	etcdBin = envOr("WIF_ETCD", filepath.Join(cache, "bin", "etcd"))
	for _, b := range []string{apiserverBin, etcdBin} {
		if _, err := os.Stat(b); err != nil {
			msg := fmt.Sprintf("e2e: %s is missing: run hack/kube-bin.sh (builds kube-apiserver %s and etcd into %s), or set WIF_KUBE_APISERVER and WIF_ETCD", b, kubeVersion, filepath.Join(cache, "bin"))
			if required() {
				fmt.Fprintln(os.Stderr, "FAIL:", msg, "(CI=true or WIF_E2E=1 requires these tests)")
				return 1
			}
			skipReason = msg
			return m.Run()
		}
	}
	tmp, err := os.MkdirTemp("", "wif-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	wifBin = filepath.Join(tmp, "wif")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", wifBin, "./cmd/wif")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: e2e: go build ./cmd/wif:", err)
		return 1
	}
	return m.Run()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// needBinaries skips t (or fails it under CI) when the control plane is missing.
func needBinaries(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}
