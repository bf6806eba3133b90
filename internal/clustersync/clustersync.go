// Package clustersync keeps a pushed trusted issuer's keys equal to a
// Kubernetes API server's service-account keys: it reads the API server's
// discovery document and /openid/v1/jwks with its own service account and
// pushes the key set to the token service whenever it changes. The token
// service keeps the keys a push removes for the object's overlap, so a
// service-account key rotation never breaks tokens already handed out, and
// a cluster the token service cannot reach (private, air-gapped) needs no
// inbound access at all.
package clustersync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/trust"
)

// In-cluster defaults: where a pod finds its API server and service
// account.
const (
	InClusterTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	InClusterCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	// maxDocBytes bounds what is read from the API server.
	maxDocBytes = 1 << 20
)

// Config configures a Syncer.
type Config struct {
	// APIServer is the API server's URL (https://host:port).
	APIServer string
	// HTTPClient reaches the API server (trusting its CA); it must have a
	// timeout.
	HTTPClient *http.Client
	// TokenFile holds the bearer token for the API server, read anew for
	// every request (the kubelet rotates it); "" sends none.
	TokenFile string
	// Admin is the token service's admin API, authenticated as the
	// identity the trusted issuer names as its pushClientId.
	Admin    *admin.Client
	TenantID string
	// Name is the trusted issuer's name.
	Name string
	// Interval between checks (default 1 minute, jittered ±10%).
	Interval time.Duration
	Logger   *slog.Logger
	// Registerer receives the syncer's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Syncer pushes an API server's keys to a trusted issuer.
type Syncer struct {
	cfg     Config
	log     *slog.Logger
	ok      atomic.Bool
	pushes  *prometheus.CounterVec
	lastOK  prometheus.Gauge
	lastKey string // the compacted key set last seen pushed
}

// New returns a Syncer.
func New(cfg Config) (*Syncer, error) {
	if cfg.APIServer == "" || cfg.HTTPClient == nil || cfg.Admin == nil || cfg.TenantID == "" || cfg.Name == "" {
		return nil, errors.New("clustersync: APIServer, HTTPClient, Admin, TenantID and Name are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cfg: cfg, log: cfg.Logger,
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wif_cluster_sync_checks_total",
			Help: "Checks of the API server's keys against the trusted issuer, by result: unchanged, pushed, failed."}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wif_cluster_sync_last_success_timestamp_seconds",
			Help: "When the trusted issuer was last seen to hold the API server's keys (Unix time)."}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.pushes, s.lastOK} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("clustersync: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Ready reports whether the last check succeeded.
func (s *Syncer) Ready() error {
	if !s.ok.Load() {
		return errors.New("the trusted issuer has not yet been seen to hold the API server's keys")
	}
	return nil
}

// Result is what one check did.
type Result struct {
	// Pushed is true when the key set differed and was pushed.
	Pushed bool
	// KIDs are the API server's key ids.
	KIDs []string
	// Retired are the keys the token service keeps verifying for the
	// overlap after this push.
	Retired []admin.RetiredKeySummary
}

// Run checks every Interval until ctx ends. Failures are logged and
// retried; Run returns only ctx's error.
func (s *Syncer) Run(ctx context.Context) error {
	for {
		if _, err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("cluster sync: check failed; retrying", "trusted_issuer", s.cfg.Name, "error", err)
		}
		d := time.Duration(float64(s.cfg.Interval) * (0.9 + 0.2*rand.Float64()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// Once reads the API server's issuer and keys and pushes them if the
// trusted issuer holds others. It refuses to push to a trusted issuer for
// another issuer (the wrong cluster, or the wrong --trusted-issuer).
func (s *Syncer) Once(ctx context.Context) (Result, error) {
	res, err := s.once(ctx)
	switch {
	case err != nil:
		s.pushes.WithLabelValues("failed").Inc()
		s.ok.Store(false)
	case res.Pushed:
		s.pushes.WithLabelValues("pushed").Inc()
	default:
		s.pushes.WithLabelValues("unchanged").Inc()
	}
	if err == nil {
		s.ok.Store(true)
		s.lastOK.SetToCurrentTime()
	}
	return res, err
}

func (s *Syncer) once(ctx context.Context) (Result, error) {
	var disc struct {
		Issuer string `json:"issuer"`
	}
	body, err := s.get(ctx, "/.well-known/openid-configuration")
	if err != nil {
		return Result{}, err
	}
	if err := json.Unmarshal(body, &disc); err != nil || disc.Issuer == "" {
		return Result{}, fmt.Errorf("the API server's discovery document has no issuer (is service account issuer discovery enabled?)")
	}
	jwks, err := s.get(ctx, "/openid/v1/jwks")
	if err != nil {
		return Result{}, err
	}
	canon, err := trust.CanonicalJSON(jwks)
	if err != nil {
		return Result{}, fmt.Errorf("the API server's /openid/v1/jwks is not JSON: %w", err)
	}
	kids := kidsOf(canon)
	res := Result{KIDs: kids}
	cur, err := s.cfg.Admin.GetPushedIssuer(ctx, s.cfg.TenantID, s.cfg.Name)
	if err != nil {
		return res, fmt.Errorf("read trusted issuer %q: %w", s.cfg.Name, err)
	}
	if cur.Issuer != disc.Issuer {
		return res, fmt.Errorf("the API server's issuer is %q but trusted issuer %q is for %q: refusing to push this cluster's keys to it (wrong cluster, or the wrong --trusted-issuer)", disc.Issuer, s.cfg.Name, cur.Issuer)
	}
	if cur.KeySource != "pushed" {
		return res, fmt.Errorf("trusted issuer %q takes its keys by %s, not by push: set its keySource to pushed", s.cfg.Name, cur.KeySource)
	}
	if sameKeys(cur.JWKS, canon) {
		if s.lastKey != string(canon) {
			s.log.Info("cluster sync: the trusted issuer holds the API server's keys", "trusted_issuer", s.cfg.Name, "kids", strings.Join(kids, ","))
			s.lastKey = string(canon)
		}
		return res, nil
	}
	out, err := s.cfg.Admin.PushKeys(ctx, s.cfg.TenantID, s.cfg.Name, canon)
	if err != nil {
		return res, fmt.Errorf("push keys to trusted issuer %q: %w", s.cfg.Name, err)
	}
	res.Pushed, res.Retired = out.Changed, out.RetiredKeys
	var retiring []string
	for _, r := range out.RetiredKeys {
		retiring = append(retiring, r.KID+" until "+r.Until.UTC().Format(time.RFC3339))
	}
	s.log.Info("cluster sync: pushed keys", "trusted_issuer", s.cfg.Name, "kids", strings.Join(kids, ","), "retiring", strings.Join(retiring, "; "))
	s.lastKey = string(canon)
	return res, nil
}

// get reads a path of the API server with the service account's token.
func (s *Syncer) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.cfg.APIServer, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	if s.cfg.TokenFile != "" {
		tok, err := os.ReadFile(s.cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the API server token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s from the API server: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s from the API server: %w", path, err)
	}
	if len(body) > maxDocBytes {
		return nil, fmt.Errorf("GET %s from the API server: the answer is over %d bytes", path, maxDocBytes)
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (bind the service account to the ClusterRole system:service-account-issuer-discovery)"
		}
		return nil, fmt.Errorf("GET %s from the API server: %s%s", path, resp.Status, hint)
	}
	return body, nil
}

func kidsOf(jwks []byte) []string {
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	_ = json.Unmarshal(jwks, &set)
	out := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

// sameKeys compares two key set documents by their canonical form.
func sameKeys(a, b []byte) bool {
	ca, err1 := trust.CanonicalJSON(a)
	cb, err2 := trust.CanonicalJSON(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}
