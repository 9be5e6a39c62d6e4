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
// configured tenants, set by SetTenants, with the API of each, and
// NoTenant. A name read from a request never becomes a label value of its
// own.
type tenantLabels struct {
	mu    sync.RWMutex
	names map[string]connector.API
}

// SetTenants makes the names of tenants (those of TENANTS_FILE, or the one
// tenant "default" of the AZURE_* variables), each with the API that
// answers for it, the values of the tenant and api labels: the series of
// each new tenant, or of a tenant that changed its API, are exported from
// 0, and those of a tenant no longer configured (or of its former API) are
// removed. Call it at start and after each reload.
func (m *Metrics) SetTenants(tenants map[string]connector.API) {
	m.tenants.mu.Lock()
	defer m.tenants.mu.Unlock()
	next := make(map[string]connector.API, len(tenants))
	for n, api := range tenants {
		if n != NoTenant {
			next[n] = api
		}
	}
	for n, api := range m.tenants.names {
		if now, ok := next[n]; !ok || now != api {
			m.deleteTenant(n)
		}
	}
	for n, api := range next {
		if was, ok := m.tenants.names[n]; !ok || was != api {
			m.exportTenant(n, api)
		}
	}
	m.tenants.names = next
}

func (m *Metrics) deleteTenant(tenant string) {
	labels := prometheus.Labels{"tenant": tenant}
	m.results.DeletePartialMatch(labels)
	m.defenderCalls.DeletePartialMatch(labels)
	m.quotaWait.DeletePartialMatch(labels)
	m.permissionMissing.DeletePartialMatch(labels)
}

// exportTenant creates the series of tenant on api whose other label
// values are known in advance, from 0.
func (m *Metrics) exportTenant(tenant string, api connector.API) {
	m.results.WithLabelValues(message.StatusSuccess, "", tenant, string(api))
	for _, k := range failureKinds {
		m.results.WithLabelValues(message.StatusFailure, string(k), tenant, string(api))
	}
	for _, c := range defenderCodes {
		m.defenderCalls.WithLabelValues(statusCode(c), tenant, string(api))
	}
	m.quotaWait.WithLabelValues(tenant)
	if tenant != NoTenant {
		m.permissionMissing.WithLabelValues(tenant, string(api), api.Permission())
	}
}

// configured is the names of the configured tenants, sorted.
func (m *Metrics) configured() []string {
	m.tenants.mu.RLock()
	defer m.tenants.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.tenants.names))
}

// withTenant calls count with the label values of tenant: its name and
// configured API when it is configured, NoTenant and api otherwise. A
// reload does not remove the tenant's series while count runs, so no
// removed tenant's series comes back.
func (m *Metrics) withTenant(tenant string, api connector.API, count func(tenant string, api connector.API)) {
	m.tenants.mu.RLock()
	defer m.tenants.mu.RUnlock()
	configured, ok := m.tenants.names[tenant]
	if !ok {
		count(NoTenant, api)
		return
	}
	count(tenant, configured)
}

func (m *Metrics) countResult(res *message.Result) {
	m.withTenant(res.Tenant, connector.API(res.API), func(tenant string, api connector.API) {
		m.results.WithLabelValues(res.Status, string(res.Kind()), tenant, string(api)).Inc()
	})
}

func (m *Metrics) tenantCall(tenant string, api connector.API, status int, d time.Duration) {
	m.withTenant(tenant, api, func(tenant string, api connector.API) {
		m.defenderCalls.WithLabelValues(statusCode(status), tenant, string(api)).Inc()
	})
	m.defenderDuration.Observe(d.Seconds())
}

// Permission records what the latest token of tenant said of the
// permission its API needs (connector.CheckPermission): the gauge
// permission_missing is 1 while it lacks it, 0 otherwise.
func (m *Metrics) Permission(tenant string, api connector.API, p connector.Permission) {
	v := 0.0
	if p == connector.PermissionMissing {
		v = 1
	}
	m.withTenant(tenant, api, func(label string, api connector.API) {
		if label != NoTenant {
			m.permissionMissing.WithLabelValues(label, string(api), api.Permission()).Set(v)
		}
	})
}

func (m *Metrics) tenantQuotaWait(tenant string, d time.Duration) {
	m.withTenant(tenant, "", func(tenant string, _ connector.API) {
		m.quotaWait.WithLabelValues(tenant).Observe(d.Seconds())
	})
}

// Tenant is the connector.Observer of the client of the tenant called name
// on api: its calls and quota waits count under its name while it is
// configured.
func (m *Metrics) Tenant(name string, api connector.API) connector.Observer {
	return tenantObserver{m: m, name: name, api: api}
}

type tenantObserver struct {
	m    *Metrics
	name string
	api  connector.API
}

func (o tenantObserver) DefenderCall(status int, d time.Duration) {
	o.m.tenantCall(o.name, o.api, status, d)
}
func (o tenantObserver) QuotaWait(d time.Duration) { o.m.tenantQuotaWait(o.name, d) }
