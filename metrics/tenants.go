package metrics

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// Outcomes of a reload of TENANTS_FILE.
const (
	ReloadApplied = "applied"
	ReloadRefused = "refused"
)

// TenantsReloads registers the counter of reloads of TENANTS_FILE by
// outcome (applied, or refused: the new file is invalid and the running
// tenants stay) and returns the function that counts one.
func (m *Metrics) TenantsReloads() (func(outcome string), error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "tenants_reloads_total",
		Help:      "Reloads of TENANTS_FILE (SIGHUP), by outcome: applied, or refused (the new file is invalid; the running tenants stay).",
	}, []string{"outcome"})
	for _, o := range []string{ReloadApplied, ReloadRefused} {
		c.WithLabelValues(o)
	}
	if err := m.reg.Register(c); err != nil {
		return nil, err
	}
	return func(outcome string) { c.WithLabelValues(outcome).Inc() }, nil
}

// NoTenant is the tenant label of what belongs to no configured tenant: a
// result that names none (a request that could not be routed) or a tenant
// that is not configured now, and a Defender client of no tenant.
const NoTenant = ""

// tenantLabels are the values the tenant label may take: the names of the
// configured tenants, set by SetTenants, and NoTenant. A name read from a
// request never becomes a label value of its own.
type tenantLabels struct {
	mu    sync.RWMutex
	names map[string]bool
}

// SetTenants makes names (those of TENANTS_FILE, or the one tenant
// "default" of the AZURE_* variables) the values of the tenant label: the
// series of each new tenant are exported from 0, and those of a tenant no
// longer in names are removed. Call it at start and after each reload.
func (m *Metrics) SetTenants(names []string) {
	m.tenants.mu.Lock()
	defer m.tenants.mu.Unlock()
	next := make(map[string]bool, len(names))
	for _, n := range names {
		if n != NoTenant {
			next[n] = true
		}
	}
	for n := range m.tenants.names {
		if !next[n] {
			m.results.DeletePartialMatch(prometheus.Labels{"tenant": n})
			m.defenderCalls.DeletePartialMatch(prometheus.Labels{"tenant": n})
			m.quotaWait.DeletePartialMatch(prometheus.Labels{"tenant": n})
		}
	}
	for n := range next {
		if !m.tenants.names[n] {
			m.exportTenant(n)
		}
	}
	m.tenants.names = next
}

// exportTenant creates the series of tenant whose other label values are
// known in advance, from 0.
func (m *Metrics) exportTenant(tenant string) {
	m.results.WithLabelValues(message.StatusSuccess, "", tenant)
	for _, k := range failureKinds {
		m.results.WithLabelValues(message.StatusFailure, string(k), tenant)
	}
	for _, c := range defenderCodes {
		m.defenderCalls.WithLabelValues(statusCode(c), tenant)
	}
	m.quotaWait.WithLabelValues(tenant)
}

// configured is the names of the configured tenants, sorted.
func (m *Metrics) configured() []string {
	m.tenants.mu.RLock()
	defer m.tenants.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.tenants.names))
}

// withTenant calls count with the label value of tenant: its name when it
// is configured, NoTenant otherwise. A reload does not remove the tenant's
// series while count runs, so no removed tenant's series comes back.
func (m *Metrics) withTenant(tenant string, count func(label string)) {
	m.tenants.mu.RLock()
	defer m.tenants.mu.RUnlock()
	if !m.tenants.names[tenant] {
		tenant = NoTenant
	}
	count(tenant)
}

func (m *Metrics) countResult(res *message.Result) {
	m.withTenant(res.Tenant, func(tenant string) {
		m.results.WithLabelValues(res.Status, string(res.Kind()), tenant).Inc()
	})
}

func (m *Metrics) tenantCall(tenant string, status int, d time.Duration) {
	m.withTenant(tenant, func(tenant string) {
		m.defenderCalls.WithLabelValues(statusCode(status), tenant).Inc()
	})
	m.defenderDuration.Observe(d.Seconds())
}

func (m *Metrics) tenantQuotaWait(tenant string, d time.Duration) {
	m.withTenant(tenant, func(tenant string) {
		m.quotaWait.WithLabelValues(tenant).Observe(d.Seconds())
	})
}

// Tenant is the connector.Observer of the Defender client of the tenant
// called name: its calls and quota waits count under its name while it is
// configured.
func (m *Metrics) Tenant(name string) connector.Observer {
	return tenantObserver{m: m, name: name}
}

type tenantObserver struct {
	m    *Metrics
	name string
}

func (o tenantObserver) DefenderCall(status int, d time.Duration) { o.m.tenantCall(o.name, status, d) }
func (o tenantObserver) QuotaWait(d time.Duration)                { o.m.tenantQuotaWait(o.name, d) }
