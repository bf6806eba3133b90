package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// newIMDSProbeCommand is `wif imds probe`: wait until a managed-identity
// endpoint answers its readiness probe. The webhook uses it as the postStart
// hook of a sidecar injected as a regular container, so the application
// container does not start before the sidecar listens (the start-up race of
// upstream's proxy).
func newIMDSProbeCommand(streams Streams) *cobra.Command {
	var (
		target  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Wait until a managed-identity endpoint is ready (exit 0), or fail after --timeout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return probeUntilReady(cmd.Context(), streams, target, timeout, 100*time.Millisecond)
		},
	}
	cmd.Flags().StringVar(&target, "url", "http://"+DefaultIMDSListen+"/readyz", "readiness URL of the endpoint (http, loopback)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait")
	return cmd
}

// probeUntilReady polls target until it answers 200 or timeout passes.
func probeUntilReady(ctx context.Context, streams Streams, target string, timeout, every time.Duration) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: give an http URL such as http://%s/readyz", target, DefaultIMDSListen)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else if ctx.Err() == nil || last == "" {
			// Keep the last real answer when the deadline cut a request.
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", target, timeout, last)
		case <-time.After(every):
		}
	}
}
