package sts

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// unknownRequests keeps requests for tenants or client ids that do not
// exist from growing the audit log and the log at whatever rate a stranger
// sends them: a request for an unknown tenant is only counted (nobody's
// audit log holds it), a request for an unknown client id of a real
// tenant is recorded in full at most clientBurst times at once and
// clientRate per second per tenant, and counted beyond. One summary log
// line a second says how many were not logged.
type unknownRequests struct {
	counter *prometheus.CounterVec
	log     *slog.Logger

	mu         sync.Mutex
	perTenant  map[string]*rate.Limiter
	logLimit   *rate.Limiter
	suppressed map[string]int
}

const (
	unknownClientRate  = 1 // records per second per tenant
	unknownClientBurst = 60
	maxSampledTenants  = 10000
)

func newUnknownRequests(reg prometheus.Registerer, log *slog.Logger) *unknownRequests {
	u := &unknownRequests{
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wif_sts_unknown_requests_total",
			Help: "Token requests naming a tenant (kind=tenant) or, in a real tenant, a client id (kind=client) that does not exist; kind=client_not_recorded counts those left out of the audit log by its per-tenant sampling.",
		}, []string{"kind"}),
		log:        log,
		perTenant:  map[string]*rate.Limiter{},
		logLimit:   rate.NewLimiter(1, 1),
		suppressed: map[string]int{},
	}
	if reg != nil {
		reg.MustRegister(u.counter)
	}
	return u
}

// record reports whether a refusal is to be audited and logged in full.
func (u *unknownRequests) record(ti *tenantIndex, code int) bool {
	switch {
	case ti == nil:
		u.counter.WithLabelValues("tenant").Inc()
		u.summarize("tenant")
		return false
	case code != CodeClientNotFound:
		return true
	}
	u.counter.WithLabelValues("client").Inc()
	u.mu.Lock()
	l := u.perTenant[ti.tenant.ID]
	if l == nil {
		if len(u.perTenant) >= maxSampledTenants {
			clear(u.perTenant)
		}
		l = rate.NewLimiter(unknownClientRate, unknownClientBurst)
		u.perTenant[ti.tenant.ID] = l
	}
	u.mu.Unlock()
	if l.Allow() {
		return true
	}
	u.counter.WithLabelValues("client_not_recorded").Inc()
	u.summarize("client")
	return false
}

// summarize logs, at most once a second, how many requests of each kind
// went unlogged since the last line.
func (u *unknownRequests) summarize(kind string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.suppressed[kind]++
	if !u.logLimit.AllowN(time.Now(), 1) {
		return
	}
	u.log.Info("token requests for unknown tenants or client ids, counted but not logged one by one (see wif_sts_unknown_requests_total)",
		"unknown_tenant", u.suppressed["tenant"], "unknown_client_not_recorded", u.suppressed["client"])
	clear(u.suppressed)
}
