package metrics

import "github.com/prometheus/client_golang/prometheus"

// Registry is the registry the metrics are registered with.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
