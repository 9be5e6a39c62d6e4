package metrics

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alert-domains/alert-domains/connector"
)

// Quota is the client-side quota: a *connector.Limiter or a *quota.Shared.
type Quota interface {
	Limits() []connector.Limit
	Used(window time.Duration) int // negative: cannot be read now
}

// WatchQuota exports at each scrape, for each configured tenant, its quota
// (quotaOf; nil: none) and the use of each window. Call it at most once.
func (m *Metrics) WatchQuota(quotaOf func(tenant string) Quota) error {
	if quotaOf == nil {
		return errors.New("metrics: nil quota")
	}
	return m.reg.Register(&quotaCollector{m: m, quotaOf: quotaOf})
}

var (
	quotaLimitDesc = prometheus.NewDesc(namespace+"_quota_limit_calls",
		"Defender calls that may start in any window of this length (DEFENDER_RATE_LIMITS, or the tenant's rateLimits), by this process (QUOTA_SCOPE=process) or by all replicas together (shared), by tenant (a name of the configured tenants) and window.",
		[]string{"tenant", "window"}, nil)
	quotaUsedDesc = prometheus.NewDesc(namespace+"_quota_used_calls",
		"Defender calls started in the last window of this length, by this process (QUOTA_SCOPE=process) or by all replicas together (shared: the calls of the tenant's app registration, which the tenants of one registration share), by tenant (a name of the configured tenants) and window.",
		[]string{"tenant", "window"}, nil)
)

type quotaCollector struct {
	m       *Metrics
	quotaOf func(tenant string) Quota
}

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaLimitDesc
	ch <- quotaUsedDesc
}

type quotaReading struct {
	q      Quota
	limits []connector.Limit
	used   []int // by limit; negative: not readable now
}

func (r *quotaReading) read() {
	r.limits = r.q.Limits()
	r.used = make([]int, len(r.limits))
	for i, l := range r.limits {
		r.used[i] = r.q.Used(l.Window)
	}
}

// Collect reads each quota once, however many tenants share it, and the
// quotas side by side: a shared quota's use is a request to NATS.
func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	names := c.m.configured()
	readings := make([]*quotaReading, len(names)) // nil: no quota
	seen := map[Quota]*quotaReading{}
	var wg sync.WaitGroup
	for i, name := range names {
		q := c.quotaOf(name)
		if q == nil {
			continue
		}
		comparable := reflect.TypeOf(q).Comparable() // else it is read for each tenant
		if comparable && seen[q] != nil {
			readings[i] = seen[q]
			continue
		}
		readings[i] = &quotaReading{q: q}
		if comparable {
			seen[q] = readings[i]
		}
		wg.Go(readings[i].read)
	}
	wg.Wait()
	for i, r := range readings {
		if r == nil {
			continue
		}
		for j, l := range r.limits {
			w := ShortDuration(l.Window)
			ch <- prometheus.MustNewConstMetric(quotaLimitDesc, prometheus.GaugeValue, float64(l.Count), names[i], w)
			if used := r.used[j]; used >= 0 {
				ch <- prometheus.MustNewConstMetric(quotaUsedDesc, prometheus.GaugeValue, float64(used), names[i], w)
			}
		}
	}
}

// SharedQuota counts the shared quota's attempts to take a slot and its
// cooldowns (a quota.Observer).
type SharedQuota struct {
	acquires  *prometheus.CounterVec
	cooldowns *prometheus.CounterVec
}

// SharedQuota registers and returns the counters of the shared quota. Call
// it at most once.
func (m *Metrics) SharedQuota() (*SharedQuota, error) {
	acquires, err := m.registerFromZero("quota_acquires_total", "Attempts to take a slot of the shared quota (QUOTA_SCOPE=shared), by outcome: accepted, refused (the window is full), unreachable (the quota state could not be read or written; no call starts).",
		"outcome", "accepted", "refused", "unreachable")
	if err != nil {
		return nil, err
	}
	cooldowns, err := m.registerFromZero("quota_cooldowns_total", "Cooldowns that paused the Defender calls of the app registration (a 429 with Retry-After), by source: local (seen by this process), shared (read from the quota state, written by any replica).",
		"source", "local", "shared")
	if err != nil {
		return nil, err
	}
	return &SharedQuota{acquires: acquires, cooldowns: cooldowns}, nil
}

// registerFromZero registers a counter of one label, each of values exported from 0.
func (m *Metrics) registerFromZero(name, help, label string, values ...string) (*prometheus.CounterVec, error) {
	c := counterVec(name, help, label)
	for _, v := range values {
		c.WithLabelValues(v)
	}
	return c, m.reg.Register(c)
}

// QuotaAcquire counts one attempt to take a slot.
func (q *SharedQuota) QuotaAcquire(outcome string) { q.acquires.WithLabelValues(outcome).Inc() }

// QuotaCooldown counts one cooldown.
func (q *SharedQuota) QuotaCooldown(source string) { q.cooldowns.WithLabelValues(source).Inc() }

// ShortDuration formats d without zero tails: 1h, 1m, 90s, 1h30m.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
