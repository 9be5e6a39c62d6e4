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

// TenantsReloads registers the counter of reloads of TENANTS_FILE and
// returns the function that counts one.
func (m *Metrics) TenantsReloads() (func(outcome string), error) {
	c, err := m.registerFromZero("tenants_reloads_total", "Reloads of TENANTS_FILE (SIGHUP), by outcome: applied, or refused (the new file is invalid; the running tenants stay).",
		"outcome", ReloadApplied, ReloadRefused)
	if err != nil {
		return nil, err
	}
	return func(outcome string) { c.WithLabelValues(outcome).Inc() }, nil
}

// NoTenant is the tenant label of what belongs to no configured tenant.
const NoTenant = ""

// tenantLabels are the configured tenants with their API: a name read from
// a request never becomes a label value of its own.
type tenantLabels struct {
	mu    sync.RWMutex
	names map[string]connector.API
}

// SetTenants makes tenants, with their API, the values of the tenant and
// api labels, exporting new ones from 0 and removing gone ones. Call it at
// start and after each reload.
func (m *Metrics) SetTenants(tenants map[string]connector.API) {
	m.tenants.mu.Lock()
	defer m.tenants.mu.Unlock()
	next := maps.Clone(tenants)
	delete(next, NoTenant)
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

func (m *Metrics) configured() []string {
	m.tenants.mu.RLock()
	defer m.tenants.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.tenants.names))
}

// withTenant calls count with tenant and its API if configured, else with
// NoTenant and api, holding off a reload meanwhile.
func (m *Metrics) withTenant(tenant string, api connector.API, count func(tenant string, api connector.API)) {
	m.tenants.mu.RLock()
	defer m.tenants.mu.RUnlock()
	configured, ok := m.tenants.names[tenant]
	if !ok {
		tenant, configured = NoTenant, api
	}
	count(tenant, configured)
}

// Permission records whether the latest token of tenant lacks its API's permission.
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

// Tenant is the connector.Observer of the client of tenant name on api.
func (m *Metrics) Tenant(name string, api connector.API) connector.Observer {
	return tenantObserver{m: m, name: name, api: api}
}

type tenantObserver struct {
	m    *Metrics
	name string
	api  connector.API
}

func (o tenantObserver) DefenderCall(status int, d time.Duration) {
	o.m.withTenant(o.name, o.api, func(tenant string, api connector.API) {
		o.m.defenderCalls.WithLabelValues(statusCode(status), tenant, string(api)).Inc()
	})
	o.m.defenderDuration.Observe(d.Seconds())
}

func (o tenantObserver) QuotaWait(d time.Duration) {
	o.m.withTenant(o.name, "", func(tenant string, _ connector.API) {
		o.m.quotaWait.WithLabelValues(tenant).Observe(d.Seconds())
	})
}
