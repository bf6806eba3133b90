package jose

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	keys         *prometheus.GaugeVec
	created      *prometheus.CounterVec
	tickFailures prometheus.Counter
	nextRotation prometheus.Gauge
	activeSince  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wif_signing_keys",
			Help: "Token signing keys known to this replica, by state: pending (published, not signing yet), active (signing), retired (published so tokens it signed still verify), unusable (its private key cannot be opened here).",
		}, []string{"state"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_signing_keys_created_total",
			Help: "Token signing keys this replica created, by reason: first (empty store), scheduled (rotation), emergency (no key was active).",
		}, []string{"reason"}),
		tickFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wif_signing_key_maintenance_failures_total",
			Help: "Signing-key maintenance rounds (reload, rotation, clean-up) that failed; the last loaded keys stay in use.",
		}),
		nextRotation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wif_signing_key_retire_timestamp_seconds",
			Help: "When the active signing key stops signing (Unix seconds); 0 when no key is active.",
		}),
		activeSince: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wif_signing_key_active_since_timestamp_seconds",
			Help: "When the active signing key began signing (Unix seconds; its age is time() minus this); 0 when no key is active.",
		}),
	}
	for _, r := range []string{reasonFirst, reasonScheduled, reasonEmergency} {
		m.created.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.keys, m.created, m.tickFailures, m.nextRotation, m.activeSince} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register signing-key metrics: %w (one Manager per Registerer)", err)
			}
			return nil, fmt.Errorf("register signing-key metrics: %w", err)
		}
	}
	return m, nil
}

// Reasons a key is created.
const (
	reasonFirst     = "first"
	reasonScheduled = "scheduled"
	reasonEmergency = "emergency"
)
