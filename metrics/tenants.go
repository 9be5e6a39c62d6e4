package metrics

import "github.com/prometheus/client_golang/prometheus"

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
