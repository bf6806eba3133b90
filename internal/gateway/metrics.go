package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	refusals *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, g *Gateway) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_gateway_requests_total", Help: "Requests by route and response status.",
		}, []string{"route", "code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_gateway_refusals_total", Help: "Requests the gateway answered itself, by route and reason (jwt_expired, jwt_bad_signature, rate_limited, check_header, backend_error, ...).",
		}, []string{"route", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wif_gateway_request_duration_seconds", Help: "Time from request to response headers, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
	}
	sum := func(hit bool) func() float64 {
		return func() float64 {
			var n uint64
			for _, v := range g.validators {
				s := v.Stats()
				if hit {
					n += s.Hits
				} else {
					n += s.Misses
				}
			}
			return float64(n)
		}
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.refusals, m.duration,
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wif_gateway_token_cache_lookups_total", Help: "Verified-token cache lookups; hit rate = hit / (hit + miss).",
				ConstLabels: prometheus.Labels{"result": "hit"},
			}, sum(true)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wif_gateway_token_cache_lookups_total", Help: "Verified-token cache lookups; hit rate = hit / (hit + miss).",
				ConstLabels: prometheus.Labels{"result": "miss"},
			}, sum(false)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wif_gateway_ratelimit_evictions_total", Help: "Live rate-limit windows evicted (fewest calls first) because a rate-limit-by-key table was full: a flood of distinct keys.",
			}, func() float64 {
				var n uint64
				for _, l := range g.limiters {
					n += l.evicted()
				}
				return float64(n)
			}))
	}
	return m
}
