package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// DefaultCacheMaxEntries is the number of alerts a ResultCache holds at
// most; beyond it, the oldest entries make room for new ones.
const DefaultCacheMaxEntries = 200_000

// CacheKey is the key of an alert's entry in the result cache (and of its
// shared call): <tenant>.<alert ID>, or the alert ID alone for plainTenant,
// prefixed "graph:" for an answer of Graph. An alert ID cached for one
// tenant, or by one API, is never an answer for another. An API not named
// ("", as in results stored before the API was) is the endpoint API.
func CacheKey(plainTenant, tenant string, api connector.API, alertID string) string {
	key := alertID
	if tenant != plainTenant {
		key = tenant + "." + alertID
	}
	if api == connector.Graph {
		key = "graph:" + key
	}
	return key
}

// ResultCache is a Cache read from the success results themselves: the
// result stream already holds every answer Defender gave, so the cache
// needs no write of its own. Each replica keeps an index of the success
// results stored in the last TTL (alert → domains), fed by an ordered
// consumer of the stream's success subjects, and answers Get from memory.
// A success that was itself answered from the cache is not indexed again:
// an entry is as old as the Defender call that produced it, whatever the
// hits after it.
//
// Put records an answer in this process's index at once (the result that
// carries it to the other replicas is stored just after); the stored
// result brings it to every replica within the consumer's lag, and to this
// one again after a restart. Until the index has read the stream up to its
// end once (Ready), an alert it does not hold yet is a miss.
type ResultCache struct {
	js          jetstream.JetStream
	stream      string
	subjects    []string
	ttl         time.Duration
	plainTenant string
	logger      *slog.Logger
	maxEntries  int
	sweepEvery  time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	now         func() time.Time

	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.RWMutex
	entries map[string]cacheEntry
	// order is the keys in the order their entries were made, oldest
	// first; an item whose entry was replaced since is skipped.
	order []orderItem
	// next is the stream sequence the index reads from after a restart of
	// its consumer (0: by time, TTL back).
	next uint64
}

// cacheEntry is one alert's answer: its domains as the JSON array the
// result carried (one allocation per entry: the index may hold many).
type cacheEntry struct {
	domains json.RawMessage
	created int64 // Unix nanoseconds
}

type orderItem struct {
	key     string
	created int64
}

// ResultCacheOption configures a ResultCache.
type ResultCacheOption func(*ResultCache)

// WithCacheLogger logs the index consumer's failures to logger.
func WithCacheLogger(logger *slog.Logger) ResultCacheOption {
	return func(c *ResultCache) { c.logger = logger }
}

// WithCacheMaxEntries bounds the index to n alerts (default
// DefaultCacheMaxEntries).
func WithCacheMaxEntries(n int) ResultCacheOption {
	return func(c *ResultCache) { c.maxEntries = max(n, 1) }
}

// WithCachePlainTenant names the tenant whose keys are the alert ID alone
// (see CacheKey), as given to WithTenants.
func WithCachePlainTenant(tenant string) ResultCacheOption {
	return func(c *ResultCache) { c.plainTenant = tenant }
}

// withCacheTiming sets the sweep interval and the consumer's restart
// backoff (tests).
func withCacheTiming(sweep, backoffMin, backoffMax time.Duration) ResultCacheOption {
	return func(c *ResultCache) { c.sweepEvery, c.backoffMin, c.backoffMax = sweep, backoffMin, backoffMax }
}

// withCacheClock sets the clock that ages local entries (tests).
func withCacheClock(now func() time.Time) ResultCacheOption {
	return func(c *ResultCache) { c.now = now }
}

// NewResultCache returns a cache of the success results published to
// successSubject and <successSubject>.<tenant> in stream, each answering
// for ttl after it was stored. Run feeds it.
func NewResultCache(js jetstream.JetStream, stream, successSubject string, ttl time.Duration, opts ...ResultCacheOption) *ResultCache {
	c := &ResultCache{
		js:         js,
		stream:     stream,
		subjects:   []string{successSubject, successSubject + ".*"},
		ttl:        ttl,
		logger:     slog.New(slog.DiscardHandler),
		maxEntries: DefaultCacheMaxEntries,
		sweepEvery: time.Minute,
		backoffMin: 100 * time.Millisecond,
		backoffMax: 10 * time.Second,
		now:        time.Now,
		ready:      make(chan struct{}),
		entries:    make(map[string]cacheEntry),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Ready is closed once the index has read the results stored before it
// started (up to the end of the stream at that time).
func (c *ResultCache) Ready() <-chan struct{} { return c.ready }

// Get returns the cached domains of key (see CacheKey).
func (c *ResultCache) Get(_ context.Context, key string) ([]string, bool, error) {
	now := c.now().UnixNano()
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || now >= e.created+int64(c.ttl) {
		return nil, false, nil
	}
	var domains []string
	if err := json.Unmarshal(e.domains, &domains); err != nil {
		return nil, false, fmt.Errorf("cache entry of %s is not a JSON array of strings: %w", key, err)
	}
	if domains == nil {
		domains = []string{}
	}
	return domains, true, nil
}

// Put records the domains of key, answered by Defender just now, in this
// process's index. It writes nothing to the server: the success result
// stored next carries the answer to the other replicas.
func (c *ResultCache) Put(_ context.Context, key string, domains []string) error {
	if domains == nil {
		domains = []string{}
	}
	data, err := json.Marshal(domains)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.setLocked(key, data, c.now().UnixNano())
	c.mu.Unlock()
	return nil
}

// setLocked records domains under key unless the index holds a later
// answer, and evicts the oldest entries beyond maxEntries.
func (c *ResultCache) setLocked(key string, domains json.RawMessage, created int64) {
	if cur, held := c.entries[key]; held && cur.created > created {
		return
	}
	c.entries[key] = cacheEntry{domains: domains, created: created}
	c.order = append(c.order, orderItem{key: key, created: created})
	for len(c.entries) > c.maxEntries && len(c.order) > 0 {
		c.popLocked()
	}
	// Replaced entries leave items behind: compact once they dominate.
	if len(c.order) > 2*len(c.entries)+1024 {
		kept := c.order[:0]
		for _, it := range c.order {
			if e, held := c.entries[it.key]; held && e.created == it.created {
				kept = append(kept, it)
			}
		}
		clear(c.order[len(kept):])
		c.order = kept
	}
}

// popLocked removes the oldest item, and its entry if the item is current.
func (c *ResultCache) popLocked() {
	it := c.order[0]
	c.order[0] = orderItem{}
	c.order = c.order[1:]
	if e, held := c.entries[it.key]; held && e.created == it.created {
		delete(c.entries, it.key)
	}
}

// sweep drops the expired entries (the oldest items first).
func (c *ResultCache) sweep() {
	limit := c.now().UnixNano() - int64(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && c.order[0].created <= limit {
		c.popLocked()
	}
	if len(c.order) == 0 {
		c.order = nil // let the backing array go
	}
}

// Len is the number of alerts the index holds (expired ones included
// until the next sweep).
func (c *ResultCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Run feeds the index until ctx ends: it reads the success results stored
// in the last TTL, then every new one, and drops expired entries
// periodically. A consumer that ends (the connection closed, the stream
// gone) is started again with a backoff, from where it stopped.
func (c *ResultCache) Run(ctx context.Context) error {
	sweep := time.NewTicker(c.sweepEvery)
	defer sweep.Stop()
	backoff := c.backoffMin
	for {
		started, err := c.follow(ctx, sweep.C)
		if ctx.Err() != nil {
			return nil
		}
		if started {
			backoff = c.backoffMin
		}
		c.logger.Warn("result cache index stopped reading the result stream; new results of other replicas are not seen until it is back",
			slog.Any("error", err), slog.Duration("retry_in", backoff))
		timer := time.NewTimer(backoff)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
				waiting = false
			case <-sweep.C:
				c.sweep()
			}
		}
		backoff = min(2*backoff, c.backoffMax)
	}
}

var errIndexClosed = errors.New("the index consumer ended")

// follow runs one ordered consumer of the success results until it ends or
// ctx does. started tells whether it was created.
func (c *ResultCache) follow(ctx context.Context, sweep <-chan time.Time) (started bool, err error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    c.subjects,
		InactiveThreshold: time.Minute,
	}
	c.mu.RLock()
	next := c.next
	c.mu.RUnlock()
	if next > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
	} else {
		from := c.now().Add(-c.ttl)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	}
	createCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := c.js.OrderedConsumer(createCtx, c.stream, cfg)
	if err != nil {
		return false, fmt.Errorf("index consumer on stream %s: %w", c.stream, err)
	}
	// Failures the ordered consumer recovers from itself (a missed
	// heartbeat, a reconnection) are logged at debug level.
	cc, err := cons.Consume(c.apply, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		c.logger.Debug("result cache index", slog.Any("error", err))
	}))
	if err != nil {
		return false, fmt.Errorf("index consumer on stream %s: %w", c.stream, err)
	}
	defer cc.Stop()
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		c.markReady()
	}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-cc.Closed():
			return true, errIndexClosed
		case <-sweep:
			c.sweep()
		}
	}
}

// cachedResult is what the index reads of a result.
type cachedResult struct {
	Status  string          `json:"status"`
	Tenant  string          `json:"tenant"`
	API     connector.API   `json:"api"`
	AlertID string          `json:"alertId"`
	Domains json.RawMessage `json:"domains"`
	Cached  *bool           `json:"cached"`
}

// apply indexes one stored result.
func (c *ResultCache) apply(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	key, domains, created, ok := c.entryOf(m.Data(), meta.Timestamp)
	c.mu.Lock()
	c.next = max(c.next, meta.Sequence.Stream+1)
	if ok {
		c.setLocked(key, domains, created)
	}
	c.mu.Unlock()
	if meta.NumPending == 0 {
		c.markReady()
	}
}

// entryOf is the index entry of a stored result, if it makes one: a
// success answered by a call (not from a cache) less than TTL ago.
func (c *ResultCache) entryOf(data []byte, stored time.Time) (key string, domains json.RawMessage, created int64, ok bool) {
	var r cachedResult
	if err := json.Unmarshal(data, &r); err != nil || r.Status != message.StatusSuccess || r.AlertID == "" || len(r.Domains) == 0 || r.Domains[0] != '[' {
		return "", nil, 0, false
	}
	if r.Cached != nil && *r.Cached {
		return "", nil, 0, false // an answer given again: its entry keeps the call's age
	}
	created = stored.UnixNano()
	if c.now().UnixNano() >= created+int64(c.ttl) {
		return "", nil, 0, false
	}
	// json.Unmarshal copies what it decodes (strings, RawMessage): the
	// entry keeps nothing of the message's buffer.
	return CacheKey(c.plainTenant, r.Tenant, r.API, r.AlertID), r.Domains, created, true
}

func (c *ResultCache) markReady() {
	c.readyOnce.Do(func() { close(c.ready) })
}
