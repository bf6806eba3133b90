package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// podman runs a container as it works on this machine kind (no daemon,
// cgroup v1): vfs storage, runc, explicit ulimits within the hard limits.
func podman(args ...string) *exec.Cmd {
	base := []string{"--storage-driver", "vfs", "--runtime", "runc"}
	return exec.Command("podman", append(base, args...)...)
}

var podmanRun = []string{"run", "--rm", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1024:1024", "--network", "host"}

// TestImage builds the image with hack/image.sh, as a user does, and runs
// it: wif version names the stamped version and revision; the process is
// not root and the image has no shell; wif dev starts in it and a token
// exchange against it from the host works.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	for _, tool := range []string{"buildah", "podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not installed: apt-get install buildah podman runc"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	// The default build: the name the chart deploys by default, and the
	// same image id when built twice from the same checkout.
	buildDefault := func() (name, id string) {
		t.Helper()
		cmd := exec.Command("bash", "../hack/image.sh")
		cmd.Env = append(os.Environ(), "REVISION=fixed-for-the-test")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/image.sh: %v\n%s", err, errOut.String())
		}
		name = strings.TrimSpace(string(out))
		idOut, err := podman("image", "inspect", "--format", "{{.Id}}", name).Output()
		if err != nil {
			t.Fatalf("inspect %s: %v", name, err)
		}
		return name, strings.TrimSpace(string(idOut))
	}
	name1, id1 := buildDefault()
	t.Cleanup(func() { _ = podman("rmi", "-f", name1).Run() })
	name2, id2 := buildDefault()
	if name1 != name2 || id1 != id2 {
		t.Errorf("two builds of one checkout: %s %s vs %s %s", name1, id1, name2, id2)
	}
	objs := render(t)
	if chartImage := get[*appsv1.Deployment](t, objs, "Deployment/wif-webhook").Spec.Template.Spec.Containers[0].Image; chartImage != name1 {
		t.Errorf("the chart deploys %s by default; hack/image.sh builds %s", chartImage, name1)
	}

	const image = "localhost/wif:test"
	build := exec.Command("bash", "../hack/image.sh")
	build.Env = append(os.Environ(), "IMAGE="+image, "VERSION=v0.0.0-test", "REVISION=0123456789abcdef")
	var berr bytes.Buffer
	build.Stderr = &berr
	out, err := build.Output()
	if err != nil {
		t.Fatalf("hack/image.sh: %v\n%s", err, berr.String())
	}
	if strings.TrimSpace(string(out)) != image {
		t.Fatalf("hack/image.sh printed %q, want the image name", out)
	}
	t.Cleanup(func() { _ = podman("rmi", "-f", image).Run() })

	v, err := podman(append(podmanRun, image, "version", "-o", "json")...).Output()
	if err != nil {
		t.Fatalf("wif version in the image: %v", err)
	}
	var info struct{ Version, Revision, Platform string }
	if err := json.Unmarshal(v, &info); err != nil || info.Version != "v0.0.0-test" || info.Revision != "0123456789abcdef" || !strings.HasPrefix(info.Platform, "linux/") {
		t.Fatalf("wif version: %v %s", err, v)
	}
	// Labels, user, no shell.
	lab, err := podman("image", "inspect", "--format", `{{index .Labels "org.opencontainers.image.version"}} {{index .Labels "org.opencontainers.image.revision"}} {{.Config.User}}`, image).Output()
	if err != nil || strings.TrimSpace(string(lab)) != "v0.0.0-test 0123456789abcdef 65532:65532" {
		t.Fatalf("labels and user: %v %q", err, lab)
	}
	if err := podman(append(podmanRun, "--entrypoint", "/bin/sh", image, "-c", "true")...).Run(); err == nil {
		t.Fatal("the image has a shell")
	}
	// "wif" resolves on PATH (kubectl exec POD -- wif backup ...).
	if out, err := podman(append(podmanRun, "--entrypoint", "wif", image, "version")...).CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "wif v0.0.0-test") {
		t.Fatalf("wif on PATH: %v %s", err, out)
	}

	// wif dev in the image, its state on a host directory.
	state := t.TempDir()
	if err := os.Chmod(state, 0o777); err != nil {
		t.Fatal(err)
	}
	name := "wif-image-test"
	_ = podman("rm", "-f", name).Run()
	run := podman(append([]string{"run", "-d", "--name", name, "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1024:1024", "--network", "host",
		"-v", state + ":/state"}, image, "dev", "--in-memory", "--random-ports", "--state-dir", "/state")...)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("podman run wif dev: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = podman("rm", "-f", name).Run() })
	envFile := filepath.Join(state, "env")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(envFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := podman("logs", name).CombinedOutput()
			t.Fatalf("wif dev in the image never wrote its env file:\n%s", logs)
		}
	}
	env := map[string]string{}
	data, _ := os.ReadFile(envFile)
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = strings.ReplaceAll(strings.Trim(v, "'"), "/state", state) // the container's paths, seen from here
		}
	}
	wif := filepath.Join(t.TempDir(), "wif")
	if out, err := exec.Command("go", "build", "-o", wif, "../cmd/wif").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	get := exec.CommandContext(ctx, wif, "token", "get", "--scope", "api://provider-api/.default", "--decode",
		"--authority-host", env["AZURE_AUTHORITY_HOST"], "--tenant-id", env["AZURE_TENANT_ID"], "--client-id", env["AZURE_CLIENT_ID"],
		"--token-file", env["AZURE_FEDERATED_TOKEN_FILE"], "--ca-file", env["WIF_CA_FILE"])
	got, err := get.CombinedOutput()
	if err != nil || !strings.Contains(string(got), `"Data.Read"`) {
		t.Fatalf("token get against wif dev in the image: %v\n%s", err, got)
	}
}
