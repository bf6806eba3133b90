// Package doctor checks, from where a workload runs, everything its
// exchange depends on — the environment the Azure SDKs read, the token
// file, the issuer, the token service, a real exchange and, in Kubernetes,
// the pod's injection — and says for each what is wrong and how to fix it.
//
// It tells the caller only what the caller may know: what it holds (its
// environment and token), what anyone can fetch (discovery documents and
// keys), and the token service's public answers. The configured trust
// stays with admins (wif audit explain, given the correlation id).
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Status is a check's verdict.
type Status string

// Verdicts. Only Fail makes a report fail; Warn is worth reading; Skip
// means a check could not run (a prerequisite failed, or it does not apply).
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Sections of a report, in the order a person debugs.
const (
	SectionEnv          = "environment"
	SectionTokenFile    = "token file"
	SectionIssuer       = "issuer"
	SectionTokenService = "token service"
	SectionExchange     = "exchange"
	SectionKubernetes   = "kubernetes"
)

// Check is one verdict.
type Check struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Status  Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail,omitempty"`
	// Fix says what to do, on one line (failures and warnings).
	Fix string `json:"fix,omitempty"`
}

// Report is every check's verdict.
type Report struct {
	Checks []Check `json:"checks"`
	// CorrelationID is the exchange's, to hand an admin.
	CorrelationID string `json:"correlationId,omitempty"`
	// OK is false when some check failed.
	OK bool `json:"ok"`
}

// Failed counts the failed checks.
func (r *Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == Fail {
			n++
		}
	}
	return n
}

func (r *Report) add(section, name string, st Status, detail, fix string) {
	r.Checks = append(r.Checks, Check{Section: section, Name: name, Status: st, Detail: detail, Fix: fix})
}

// Config says what to check.
type Config struct {
	// LookupEnv reads the workload's environment (os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Scope, when set, is asked for in a real exchange
	// ("api://provider-api/.default").
	Scope string
	// Kube, when set, checks a pod's injection through the API server.
	Kube *KubeTarget
	// SkipLocal skips the environment, token file, issuer, token service
	// and exchange checks (wif doctor --pod from outside the pod).
	SkipLocal bool
	// Timeout bounds each network request (default 10 s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run runs every check that applies and returns the report.
func Run(ctx context.Context, cfg Config) *Report {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = func(string) (string, bool) { return "", false }
	}
	r := &Report{Checks: []Check{}}
	if !cfg.SkipLocal {
		w := checkEnv(r, cfg)
		tok := checkTokenFile(r, cfg, w)
		client := w.httpClient(cfg.Timeout)
		checkIssuer(ctx, r, cfg, client, tok, false)
		checkTokenService(ctx, r, cfg, client, w)
		checkExchange(ctx, r, cfg, client, w, tok)
	}
	if cfg.Kube != nil {
		checkKubernetes(ctx, r, cfg)
	} else if !cfg.SkipLocal {
		checkInPod(r, cfg)
	}
	r.OK = r.Failed() == 0
	return r
}

// get fetches a URL with a bounded body.
func get(ctx context.Context, c *http.Client, url string, max int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wif-doctor")
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return resp, nil, fmt.Errorf("read %s: %w", url, err)
	}
	if int64(len(body)) > max {
		return resp, nil, fmt.Errorf("%s answered more than %d bytes", url, max)
	}
	return resp, body, nil
}

// netFix is the fix for a failed request: what its error says to do.
func netFix(err error, trustHint string) string {
	var s = err.Error()
	switch {
	case strings.Contains(s, "x509:") || strings.Contains(s, "tls:") || strings.Contains(s, "certificate"):
		return trustHint
	case strings.Contains(s, "connection refused"):
		return "nothing listens there: is the server running, and is the port right?"
	case strings.Contains(s, "no such host"):
		return "the host name does not resolve from here: check the URL (and DNS)"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "timeout"):
		return "no answer in time: a firewall or proxy (HTTPS_PROXY, NO_PROXY) may be in the way"
	}
	return "check the URL and the network from here"
}

// ago renders a duration for a person: "3m", "2h5m", "4d".
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
