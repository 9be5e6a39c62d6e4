package metrics

import (
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alert-domains/alert-domains/connector"
)

// Quota is the client-side quota of the process (a *connector.Limiter).
type Quota interface {
	Limits() []connector.Limit
	Used(window time.Duration) int
}

// WatchQuota exports the configured quota and how much of each window this
// process has used, read at each scrape. Call it at most once.
func (m *Metrics) WatchQuota(q Quota) error {
	if q == nil {
		return errors.New("metrics: nil quota")
	}
	return m.reg.Register(&quotaCollector{q: q})
}

var (
	quotaLimitDesc = prometheus.NewDesc(namespace+"_quota_limit_calls",
		"Defender calls this process may start in any window of this length (DEFENDER_RATE_LIMITS).",
		[]string{"window"}, nil)
	quotaUsedDesc = prometheus.NewDesc(namespace+"_quota_used_calls",
		"Defender calls this process started in the last window of this length.",
		[]string{"window"}, nil)
)

type quotaCollector struct {
	q Quota
}

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaLimitDesc
	ch <- quotaUsedDesc
}

func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.q.Limits() {
		w := ShortDuration(l.Window)
		ch <- prometheus.MustNewConstMetric(quotaLimitDesc, prometheus.GaugeValue, float64(l.Count), w)
		ch <- prometheus.MustNewConstMetric(quotaUsedDesc, prometheus.GaugeValue, float64(c.q.Used(l.Window)), w)
	}
}

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
