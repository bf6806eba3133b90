package cli

import (
	"strings"
	"testing"
	"time"
)

func TestWebhookFlagsValidate(t *testing.T) {
	ok := webhookFlags{tenantID: "t", certSecretName: "s", proxyNative: "auto", certValidity: time.Hour, tlsMinVersion: "1.3"}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid flags: %v", err)
	}
	bad := webhookFlags{tlsCertFile: "c.pem", proxyNative: "maybe", certValidity: time.Minute, tlsMinVersion: "1.0"}
	err := bad.validate()
	for _, want := range []string{
		"--tenant-id is required",
		"--tls-cert-file and --tls-key-file go together",
		`--proxy-sidecar-native "maybe": expected auto, true or false`,
		"--cert-validity 1m0s is too short",
		`--tls-min-version "1.0": expected 1.2 or 1.3`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestWebhookCommandNeedsAKubeconfigOutsideACluster(t *testing.T) {
	cmd := newWebhookCommand(Streams{Out: &strings.Builder{}, ErrOut: &strings.Builder{}})
	cmd.SetArgs([]string{"--tenant-id", "t", "--kubeconfig", "/nonexistent/kubeconfig"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "load kubeconfig /nonexistent/kubeconfig") {
		t.Fatalf("err = %v", err)
	}
}
