package metrics

import (
	"context"

	"github.com/alert-domains/alert-domains/handlers"
)

// InstrumentCache returns c counting its hits, misses and errors.
func (m *Metrics) InstrumentCache(c handlers.Cache) handlers.Cache {
	return &countingCache{next: c, m: m}
}

type countingCache struct {
	next handlers.Cache
	m    *Metrics
}

func (c *countingCache) Get(ctx context.Context, alertID string) ([]string, bool, error) {
	domains, ok, err := c.next.Get(ctx, alertID)
	switch {
	case err != nil:
		c.m.cacheErrors.WithLabelValues("get").Inc()
		c.m.cacheMisses.Inc()
	case ok:
		c.m.cacheHits.Inc()
	default:
		c.m.cacheMisses.Inc()
	}
	return domains, ok, err
}

func (c *countingCache) Put(ctx context.Context, alertID string, domains []string) error {
	err := c.next.Put(ctx, alertID, domains)
	if err != nil {
		c.m.cacheErrors.WithLabelValues("put").Inc()
	}
	return err
}
