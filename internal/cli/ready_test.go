package cli

import (
	"os"
	"strings"
	"testing"
	"time"
)

// waitReady waits for a command started in the background to write its
// --ready-file and returns the file's content (the base URL). It fails the
// test if the command exits first (done) or nothing appears within 20 s;
// logs gives the command's stderr for the failure message.
func waitReady(t *testing.T, path string, done <-chan error, logs func() string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-done:
			t.Fatalf("the command exited before it was ready: %v\n%s", err, logs())
		default:
		}
	}
	t.Fatalf("no ready file %s after 20 s\n%s", path, logs())
	return ""
}
