package imds

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests        *prometheus.CounterVec
	exchanges       *prometheus.CounterVec
	exchangeSeconds prometheus.Histogram
	cacheHits       prometheus.Counter
	cacheMisses     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_imds_requests_total",
			Help: "Token requests answered, by protocol (imds, appservice, other) and HTTP status code.",
		}, []string{"protocol", "code"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_imds_exchanges_total",
			Help: "Federated exchanges at the token service, by result (success, refused, server_error, unreachable, token_file_error, malformed_response, canceled, error).",
		}, []string{"result"}),
		exchangeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wif_imds_exchange_duration_seconds",
			Help:    "Duration of federated exchanges at the token service.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_imds_token_cache_hits_total",
			Help: "Token requests answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_imds_token_cache_misses_total",
			Help: "Token requests that started or joined an exchange.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.exchanges, m.exchangeSeconds, m.cacheHits, m.cacheMisses} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("imds: register metrics: %w (one Server per registry)", err)
			}
			return nil, fmt.Errorf("imds: register metrics: %w", err)
		}
	}
	return m, nil
}
