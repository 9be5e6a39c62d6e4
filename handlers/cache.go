package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultCacheMaxEntries is the number of entries a KVCache holds in memory
// at most; beyond it, reads of keys it does not hold go to the server.
const DefaultCacheMaxEntries = 200_000

// KVCache is a Cache in a JetStream key-value bucket: the alert ID is the
// key, the domains (a JSON array) the value, and the bucket's TTL the time a
// result stays. Every replica shares the bucket.
//
// While Run runs, the cache keeps an index of the bucket in memory, fed by
// a watcher of the bucket (its values, then every put and delete of any
// replica), and Get answers from it without asking the server: a key the
// index does not hold is a miss at once. Puts of other replicas are seen
// within the watcher's lag. Until the watcher has delivered the bucket's
// values, while it is broken or disconnected, and for keys it had no room
// for (see WithCacheMaxEntries), Get asks the server instead.
type KVCache struct {
	kv         jetstream.KeyValue
	nc         *nats.Conn
	logger     *slog.Logger
	maxEntries int
	sweepEvery time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	now        func() time.Time

	mu sync.RWMutex
	// live: the index holds every key of the bucket (but those after
	// incompleteUntil), up to the watcher's lag.
	live    bool
	ttl     time.Duration
	entries map[string]cacheEntry
	// incompleteUntil is the time until which the index may lack keys
	// that did not fit under maxEntries: the expiry of the latest of them.
	incompleteUntil time.Time
}

type cacheEntry struct {
	value    []byte
	created  int64 // Unix nanoseconds; small, for a large index
	revision uint64
}

// KVCacheOption configures a KVCache.
type KVCacheOption func(*KVCache)

// WithCacheConn lets the cache follow the connection of its bucket: the
// index is not used from a disconnection until a new watcher has delivered
// the bucket's values after the reconnection.
func WithCacheConn(nc *nats.Conn) KVCacheOption {
	return func(c *KVCache) { c.nc = nc }
}

// WithCacheLogger logs the watcher's failures and restarts to logger.
func WithCacheLogger(logger *slog.Logger) KVCacheOption {
	return func(c *KVCache) { c.logger = logger }
}

// WithCacheMaxEntries bounds the index to n entries (default
// DefaultCacheMaxEntries).
func WithCacheMaxEntries(n int) KVCacheOption {
	return func(c *KVCache) { c.maxEntries = max(n, 0) }
}

// withCacheTiming sets the sweep interval and the watcher's restart backoff
// (tests).
func withCacheTiming(sweep, backoffMin, backoffMax time.Duration) KVCacheOption {
	return func(c *KVCache) { c.sweepEvery, c.backoffMin, c.backoffMax = sweep, backoffMin, backoffMax }
}

// NewKVCache returns a cache over kv. It reads from the server on every Get
// until Run runs.
func NewKVCache(kv jetstream.KeyValue, opts ...KVCacheOption) *KVCache {
	c := &KVCache{
		kv:         kv,
		logger:     slog.New(slog.DiscardHandler),
		maxEntries: DefaultCacheMaxEntries,
		sweepEvery: time.Minute,
		backoffMin: 100 * time.Millisecond,
		backoffMax: 10 * time.Second,
		now:        time.Now,
		entries:    make(map[string]cacheEntry),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Get returns the cached domains of alertID.
func (c *KVCache) Get(ctx context.Context, alertID string) ([]string, bool, error) {
	value, ok, local := c.getLocal(alertID)
	if !local {
		e, err := c.kv.Get(ctx, alertID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("cache get: %w", err)
		}
		value, ok = e.Value(), true
	}
	if !ok {
		return nil, false, nil
	}
	var domains []string
	if err := json.Unmarshal(value, &domains); err != nil {
		return nil, false, fmt.Errorf("cache entry of %s is not a JSON array: %w", alertID, err)
	}
	return domains, true, nil
}

// getLocal answers from the index: local is false when the server must be
// asked.
func (c *KVCache) getLocal(key string) (value []byte, ok, local bool) {
	now := c.now()
	c.mu.RLock()
	if !c.live {
		c.mu.RUnlock()
		return nil, false, false
	}
	e, held := c.entries[key]
	ttl, incomplete := c.ttl, now.Before(c.incompleteUntil)
	c.mu.RUnlock()
	switch {
	case !held:
		return nil, false, !incomplete
	case ttl > 0 && now.UnixNano() >= e.created+int64(ttl):
		c.mu.Lock()
		if cur, still := c.entries[key]; still && cur.revision == e.revision {
			delete(c.entries, key)
		}
		c.mu.Unlock()
		return nil, false, true
	}
	return e.value, true, true
}

// Put stores the domains of alertID.
func (c *KVCache) Put(ctx context.Context, alertID string, domains []string) error {
	data, err := json.Marshal(domains)
	if err != nil {
		return err
	}
	created := c.now().UnixNano()
	// Seen at once by this process, even before the server has it: the
	// result is already stored, and a repeat of the request may follow it
	// at once. The revision is the server's once it answers; the watcher
	// brings the same revision with the server's time later.
	c.mu.Lock()
	pending := c.setPendingLocked(alertID, data, created)
	c.mu.Unlock()
	rev, err := c.kv.Put(ctx, alertID, data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if cur, held := c.entries[alertID]; held && pending && cur.created == created && cur.revision == 0 {
			delete(c.entries, alertID)
		}
		return fmt.Errorf("cache put: %w", err)
	}
	c.setLocked(alertID, cacheEntry{value: data, created: created, revision: rev})
	return nil
}

// setPendingLocked records a value being written, before its revision is
// known: it replaces what the index holds under key, keeping its revision,
// so that the watcher's later revisions still apply. pending tells whether
// the entry was new (revision 0).
func (c *KVCache) setPendingLocked(key string, value []byte, created int64) (pending bool) {
	if cur, held := c.entries[key]; held {
		c.entries[key] = cacheEntry{value: value, created: created, revision: cur.revision}
		return false
	}
	c.setLocked(key, cacheEntry{value: value, created: created})
	return true
}

// setLocked records e under key unless the index holds a later revision or
// has no room for it.
func (c *KVCache) setLocked(key string, e cacheEntry) {
	cur, held := c.entries[key]
	if held {
		if cur.revision <= e.revision {
			c.entries[key] = e
		}
		return
	}
	if len(c.entries) >= c.maxEntries {
		until := time.Unix(0, e.created).Add(c.ttl)
		if c.ttl <= 0 {
			until = time.Unix(1<<62, 0) // never expires
		}
		if until.After(c.incompleteUntil) {
			c.incompleteUntil = until
		}
		return
	}
	c.entries[key] = e
}

// deleteLocked removes key unless the index holds a later revision.
func (c *KVCache) deleteLocked(key string, revision uint64) {
	if cur, held := c.entries[key]; held && cur.revision <= revision {
		delete(c.entries, key)
	}
}

// Run keeps the index until ctx ends: it watches the bucket, restarts the
// watcher with a backoff when it fails, closes or its connection is lost,
// and drops expired entries periodically. It returns when ctx ends, with
// the watcher stopped; Get then reads from the server again.
func (c *KVCache) Run(ctx context.Context) error {
	var status chan nats.Status
	if c.nc != nil {
		status = c.nc.StatusChanged()
		defer c.nc.RemoveStatusListener(status)
	}
	sweep := time.NewTicker(c.sweepEvery)
	defer sweep.Stop()
	backoff := c.backoffMin
	for {
		wasLive, err := c.watch(ctx, status, sweep.C)
		c.setLive(false)
		if ctx.Err() != nil {
			return nil
		}
		if wasLive {
			backoff = c.backoffMin
		}
		c.logger.Warn("cache watcher stopped, reading the cache from NATS until it is back", slog.Any("error", err), slog.Duration("retry_in", backoff))
		// Wait out the backoff, and for the connection to be back.
		timer := time.NewTimer(backoff)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
				waiting = false
			case <-sweep.C:
			case <-status:
			}
		}
		for c.nc != nil && !c.nc.IsConnected() {
			select {
			case <-ctx.Done():
				return nil
			case <-status:
			case <-sweep.C:
			}
		}
		backoff = min(2*backoff, c.backoffMax)
	}
}

var (
	errWatcherClosed = errors.New("watcher closed")
	errDisconnected  = errors.New("disconnected from NATS")
)

// watch runs one watcher until it fails or ctx ends. wasLive tells whether
// it delivered the bucket's values.
func (c *KVCache) watch(ctx context.Context, status <-chan nats.Status, sweep <-chan time.Time) (wasLive bool, err error) {
	if c.nc != nil && !c.nc.IsConnected() {
		return false, errDisconnected
	}
	statusCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := c.kv.Status(statusCtx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("bucket status: %w", err)
	}

	c.mu.Lock()
	c.live = false
	c.ttl = st.TTL()
	c.entries = make(map[string]cacheEntry)
	c.incompleteUntil = time.Time{}
	c.mu.Unlock()

	// The subscription lives as long as watchCtx: cancel it when the watch
	// ends, and when creating the watcher takes too long.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	timeout := time.AfterFunc(10*time.Second, stopWatch)
	w, err := c.kv.WatchAll(watchCtx)
	if !timeout.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err != nil {
		if w != nil {
			stopWatcher(w)
		}
		return false, fmt.Errorf("watch bucket: %w", err)
	}
	defer stopWatcher(w)
	// Leave the index first: stopping the watcher can take a while.
	defer c.setLive(false)

	updates := w.Updates()
	var disconnected error
	for {
		select {
		case <-ctx.Done():
			return wasLive, ctx.Err()
		case s := <-status:
			switch {
			case s != nats.CONNECTED:
				// Read from the server (which fails) from now on. Stop
				// the watcher once connected again, which is quick then,
				// and start a new one to have the bucket as it is.
				c.setLive(false)
				if disconnected == nil {
					disconnected = fmt.Errorf("%w (%s)", errDisconnected, s)
				}
			case disconnected != nil:
				return wasLive, disconnected
			}
		case <-sweep:
			if disconnected != nil && c.nc.IsConnected() {
				return wasLive, disconnected // a status change missed
			}
			c.sweep()
		case e, ok := <-updates:
			if !ok {
				return wasLive, errWatcherClosed
			}
			if e == nil {
				if disconnected == nil {
					wasLive = true
					c.setLive(true)
				}
				continue
			}
			c.apply(e)
		}
	}
}

// stopWatcher stops w and consumes what it still delivers, so that the
// subscription's goroutine, which blocks on a full channel, ends.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-timeout.C:
			return
		}
	}
}

func (c *KVCache) apply(e jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Operation() {
	case jetstream.KeyValuePut:
		// The key is cloned so as not to keep the whole subject.
		c.setLocked(strings.Clone(e.Key()), cacheEntry{value: e.Value(), created: e.Created().UnixNano(), revision: e.Revision()})
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		c.deleteLocked(e.Key(), e.Revision())
	}
}

func (c *KVCache) setLive(live bool) {
	c.mu.Lock()
	c.live = live
	if !live {
		// Read from the server until a new watcher has the bucket again.
		c.entries = make(map[string]cacheEntry)
		c.incompleteUntil = time.Time{}
	}
	c.mu.Unlock()
}

// sweep drops the expired entries.
func (c *KVCache) sweep() {
	now := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttl <= 0 {
		return
	}
	for k, e := range c.entries {
		if now >= e.created+int64(c.ttl) {
			delete(c.entries, k)
		}
	}
}
