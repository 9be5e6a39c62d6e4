package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KVCache is a Cache in a JetStream key-value bucket: the alert ID is the
// key, the domains (a JSON array) the value, and the bucket's TTL the time a
// result stays. Every replica shares the bucket.
type KVCache struct {
	kv jetstream.KeyValue
}

// NewKVCache returns a cache over kv.
func NewKVCache(kv jetstream.KeyValue) *KVCache { return &KVCache{kv: kv} }

// Get returns the cached domains of alertID.
func (c *KVCache) Get(ctx context.Context, alertID string) ([]string, bool, error) {
	e, err := c.kv.Get(ctx, alertID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache get: %w", err)
	}
	var domains []string
	if err := json.Unmarshal(e.Value(), &domains); err != nil {
		return nil, false, fmt.Errorf("cache entry of %s is not a JSON array: %w", alertID, err)
	}
	return domains, true, nil
}

// Put stores the domains of alertID.
func (c *KVCache) Put(ctx context.Context, alertID string, domains []string) error {
	data, err := json.Marshal(domains)
	if err != nil {
		return err
	}
	if _, err := c.kv.Put(ctx, alertID, data); err != nil {
		return fmt.Errorf("cache put: %w", err)
	}
	return nil
}
