package trust

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are pre-resolved so that the lookup path only adds to a counter.
type metrics struct {
	hit, miss         prometheus.Counter
	fetchOK, fetchErr prometheus.Counter
	duration          prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, logger *slog.Logger) metrics {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wif_trust_key_lookups_total",
		Help: "Key lookups in the remote issuer key cache, by result: hit (kid cached) or miss.",
	}, []string{"result"})
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wif_trust_fetches_total",
		Help: "Fetches of remote issuer metadata and keys, by result: ok or error.",
	}, []string{"result"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wif_trust_fetch_duration_seconds",
		Help:    "Duration of one fetch of an issuer's discovery document and key set.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
	if reg != nil {
		lookups = register(reg, lookups, logger)
		fetches = register(reg, fetches, logger)
		duration = register(reg, duration, logger)
	}
	return metrics{
		hit:      lookups.WithLabelValues("hit"),
		miss:     lookups.WithLabelValues("miss"),
		fetchOK:  fetches.WithLabelValues("ok"),
		fetchErr: fetches.WithLabelValues("error"),
		duration: duration,
	}
}

// register registers c, or returns the identical collector another Cache
// registered already (several caches can share one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, logger *slog.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	logger.Error("trust: registering metrics failed", "error", err)
	return c
}
