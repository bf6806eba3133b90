package sts

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	exchanges     *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	auditDropped  prometheus.Counter
	auditSpooled  prometheus.Counter
	auditReplayed prometheus.Counter
	// auditAggregated counts successes kept as a count in an aggregate
	// row rather than as a record of their own.
	auditAggregated prometheus.Counter
	revision        prometheus.Gauge
	shed            prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_sts_exchanges_total",
			Help: "Token requests by grant type, result and AADSTS error code (0 on success).",
		}, []string{"grant_type", "result", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wif_sts_exchange_duration_seconds",
			Help:    "Time to answer a token request, by result.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_sts_audit_dropped_total",
			Help: "Audit records dropped because the queue was full, the service had stopped, or the store refused them.",
		}),
		auditSpooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_sts_audit_spooled_total",
			Help: "Audit records written to the local spool because the store did not take them.",
		}),
		auditReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_sts_audit_replayed_total",
			Help: "Spooled audit records written to the store once it was back.",
		}),
		auditAggregated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_sts_audit_aggregated_total",
			Help: "Repeated successful exchanges counted in a per-minute aggregate audit row instead of a record of their own.",
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wif_sts_directory_revision",
			Help: "Directory revision served from memory.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_sts_shed_total",
			Help: "Token requests answered 503 temporarily_unavailable at once because the wait for a turn would exceed --max-queue-wait (overload).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.exchanges, m.latency, m.auditDropped, m.auditSpooled, m.auditReplayed, m.auditAggregated, m.revision, m.shed)
	}
	return m
}

func (m *metrics) observe(grant, result string, code int, d time.Duration) {
	switch grant {
	case GrantClientCredentials, GrantTokenExchange:
	default:
		grant = "other" // bounded label values: never a client-chosen string
	}
	m.exchanges.WithLabelValues(grant, result, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(result).Observe(d.Seconds())
}
