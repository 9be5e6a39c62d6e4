package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// connectKV connects to r and opens (or creates) the bucket "results" with
// ttl.
func connectKV(t *testing.T, r *testenv.Restartable, ttl time.Duration) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc, js := testenv.Connect(t, r.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	kv, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "results", TTL: ttl, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return nc, kv
}

// countingKV counts the reads that reach the server, and can hold back the
// marker of its watchers' initial values.
type countingKV struct {
	jetstream.KeyValue
	gets atomic.Int64

	mu       sync.Mutex
	hold     chan struct{} // the marker passes once it is closed
	watchers []*gatedWatcher
}

func newCountingKV(kv jetstream.KeyValue) *countingKV {
	hold := make(chan struct{})
	close(hold)
	return &countingKV{KeyValue: kv, hold: hold}
}

func (k *countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	k.gets.Add(1)
	return k.KeyValue.Get(ctx, key)
}

// holdMarker makes the watchers created from now on withhold their marker
// until the returned function is called.
func (k *countingKV) holdMarker() (release func()) {
	hold := make(chan struct{})
	k.mu.Lock()
	k.hold = hold
	k.mu.Unlock()
	return sync.OnceFunc(func() { close(hold) })
}

func (k *countingKV) watcherCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.watchers)
}

// lastWatcher is the watcher created last.
func (k *countingKV) lastWatcher() *gatedWatcher {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.watchers[len(k.watchers)-1]
}

func (k *countingKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	inner, err := k.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	w := &gatedWatcher{inner: inner, out: make(chan jetstream.KeyValueEntry), stop: make(chan struct{}), hold: k.hold}
	k.watchers = append(k.watchers, w)
	go w.forward()
	return w, nil
}

// gatedWatcher passes on the updates of a watcher, the marker once its hold
// is released; Stop (by the cache, or by a test to break it) closes it.
type gatedWatcher struct {
	inner    jetstream.KeyWatcher
	out      chan jetstream.KeyValueEntry
	stop     chan struct{}
	stopOnce sync.Once
	hold     <-chan struct{}
}

func (w *gatedWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.out }

func (w *gatedWatcher) Stop() error {
	w.stopOnce.Do(func() { close(w.stop) })
	return nil
}

func (w *gatedWatcher) forward() {
	defer close(w.out)
	defer stopWatcher(w.inner)
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-w.stop:
			return
		case got, ok := <-w.inner.Updates():
			if !ok {
				return
			}
			e = got
		}
		if e == nil {
			select {
			case <-w.hold:
			case <-w.stop:
				return
			}
		}
		select {
		case w.out <- e:
		case <-w.stop:
			return
		}
	}
}

// runCache runs c until the test ends.
func runCache(t *testing.T, c *KVCache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func (c *KVCache) isLive() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.live
}

func (c *KVCache) held() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// eventually polls cond until it holds, or fails the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, cond, "%s", what)
}

func testCacheOpts() []KVCacheOption {
	return []KVCacheOption{withCacheTiming(20*time.Millisecond, 10*time.Millisecond, 50*time.Millisecond)}
}

// wantGet checks a Get of id and the number of server reads it made.
func wantGet(t *testing.T, c *KVCache, kv *countingKV, id string, want []string, wantServerReads int64) {
	t.Helper()
	before := kv.gets.Load()
	got, ok, err := c.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	if want == nil && ok {
		t.Errorf("Get %s = %q, want a miss", id, got)
	}
	if want != nil && (!ok || !slices.Equal(got, want)) {
		t.Errorf("Get %s = %q, %v, want %q", id, got, ok, want)
	}
	if n := kv.gets.Load() - before; n != wantServerReads {
		t.Errorf("Get %s read the server %d times, want %d", id, n, wantServerReads)
	}
}

func TestKVCacheHitMissLocal(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	_, raw := connectKV(t, srv, time.Hour)
	if _, err := raw.Put(t.Context(), "before", []byte(`["old.example.com"]`)); err != nil {
		t.Fatal(err)
	}
	kv := newCountingKV(raw)
	c := NewKVCache(kv, testCacheOpts()...)
	runCache(t, c)
	eventually(t, "the watcher's initial values", c.isLive)

	wantGet(t, c, kv, "before", []string{"old.example.com"}, 0)
	wantGet(t, c, kv, "absent", nil, 0)
	if err := c.Put(t.Context(), "a1", []string{"www.example.com", "cdn.example.net"}); err != nil {
		t.Fatal(err)
	}
	// Its own write is a hit at once.
	wantGet(t, c, kv, "a1", []string{"www.example.com", "cdn.example.net"}, 0)
	if err := c.Put(t.Context(), "empty", []string{}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, kv, "empty", []string{}, 0)

	// A delete or purge by anyone removes the entry.
	if err := raw.Delete(t.Context(), "a1"); err != nil {
		t.Fatal(err)
	}
	if err := raw.Purge(t.Context(), "before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletes", func() bool {
		_, ok1, _ := c.Get(t.Context(), "a1")
		_, ok2, _ := c.Get(t.Context(), "before")
		return !ok1 && !ok2
	})
	if n := kv.gets.Load(); n != 0 {
		t.Errorf("%d server reads, want 0", n)
	}

	// A value that is not a JSON array is an error, as from the server.
	if _, err := raw.Put(t.Context(), "bad", []byte("{")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad entry", func() bool {
		_, _, err := c.Get(t.Context(), "bad")
		return err != nil
	})
}

func TestKVCachePutByAnotherReplica(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	_, rawA := connectKV(t, srv, time.Hour)
	_, rawB := connectKV(t, srv, time.Hour)
	kvA, kvB := newCountingKV(rawA), newCountingKV(rawB)
	a, b := NewKVCache(kvA, testCacheOpts()...), NewKVCache(kvB, testCacheOpts()...)
	runCache(t, a)
	runCache(t, b)
	eventually(t, "both watchers", func() bool { return a.isLive() && b.isLive() })

	wantGet(t, b, kvB, "x1", nil, 0)
	if err := a.Put(t.Context(), "x1", []string{"evil.example.org"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica b to see the put of a", func() bool {
		_, ok, err := b.Get(t.Context(), "x1")
		return err == nil && ok
	})
	wantGet(t, b, kvB, "x1", []string{"evil.example.org"}, 0)
	if n := kvB.gets.Load(); n != 0 {
		t.Errorf("replica b read the server %d times, want 0", n)
	}
	// A later put replaces it everywhere.
	if err := b.Put(t.Context(), "x1", []string{"new.example.org"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica a to see the put of b", func() bool {
		d, ok, err := a.Get(t.Context(), "x1")
		return err == nil && ok && slices.Equal(d, []string{"new.example.org"})
	})
}

func TestKVCacheExpiry(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	_, raw := connectKV(t, srv, time.Second)
	kv := newCountingKV(raw)
	c := NewKVCache(kv, testCacheOpts()...)
	runCache(t, c)
	eventually(t, "the watcher's initial values", c.isLive)

	start := time.Now()
	for _, id := range []string{"e1", "e2"} {
		if err := c.Put(t.Context(), id, []string{"www.example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	wantGet(t, c, kv, "e1", []string{"www.example.com"}, 0)
	// e1 expires on read, e2 in the sweep without being read.
	eventually(t, "e1 to expire", func() bool {
		_, ok, err := c.Get(t.Context(), "e1")
		return err == nil && !ok
	})
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		t.Errorf("expired after %v, want the TTL of 1s", elapsed)
	}
	eventually(t, "the sweep", func() bool { return c.held() == 0 })
	if n := kv.gets.Load(); n != 0 {
		t.Errorf("%d server reads, want 0", n)
	}
	// The server agrees.
	if _, err := raw.Get(t.Context(), "e2"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		eventually(t, "the server to expire e2", func() bool {
			_, err := raw.Get(t.Context(), "e2")
			return errors.Is(err, jetstream.ErrKeyNotFound)
		})
	}
}

func TestKVCacheFallsBackUntilReadyAndWhenBroken(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	_, raw := connectKV(t, srv, time.Hour)
	if _, err := raw.Put(t.Context(), "k1", []byte(`["one.example.com"]`)); err != nil {
		t.Fatal(err)
	}
	kv := newCountingKV(raw)
	c := NewKVCache(kv, testCacheOpts()...)

	// Not running: every read goes to the server.
	wantGet(t, c, kv, "k1", []string{"one.example.com"}, 1)
	wantGet(t, c, kv, "absent", nil, 1)

	// Running, the initial values not yet all delivered: the server still.
	release := kv.holdMarker()
	runCache(t, c)
	eventually(t, "the first watcher", func() bool { return kv.watcherCount() == 1 })
	wantGet(t, c, kv, "k1", []string{"one.example.com"}, 1)
	wantGet(t, c, kv, "absent", nil, 1)
	release()
	eventually(t, "the watcher's initial values", c.isLive)
	wantGet(t, c, kv, "k1", []string{"one.example.com"}, 0)
	wantGet(t, c, kv, "absent", nil, 0)

	// The watcher breaks: the server again, until a new watcher has
	// delivered the bucket's values; what was written meanwhile is there.
	release = kv.holdMarker()
	if err := kv.lastWatcher().Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new watcher", func() bool { return kv.watcherCount() == 2 })
	if _, err := raw.Put(t.Context(), "k2", []byte(`["two.example.com"]`)); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, kv, "k2", []string{"two.example.com"}, 1)
	wantGet(t, c, kv, "absent", nil, 1)
	release()
	eventually(t, "the new watcher's initial values", c.isLive)
	eventually(t, "k2 in the index", func() bool { return c.held() == 2 })
	wantGet(t, c, kv, "k1", []string{"one.example.com"}, 0)
	wantGet(t, c, kv, "k2", []string{"two.example.com"}, 0)
	wantGet(t, c, kv, "absent", nil, 0)
}

func TestKVCacheBrokerRestart(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	nc, raw := connectKV(t, srv, time.Hour)
	kv := newCountingKV(raw)
	c := NewKVCache(kv, append(testCacheOpts(), WithCacheConn(nc))...)
	runCache(t, c)
	eventually(t, "the watcher's initial values", c.isLive)
	if err := c.Put(t.Context(), "r1", []string{"one.example.com"}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, kv, "r1", []string{"one.example.com"}, 0)

	srv.Stop()
	eventually(t, "the cache to leave its index", func() bool { return !c.isLive() })
	// Down: an error, never a false miss.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, ok, err := c.Get(ctx, "r1")
	cancel()
	if err == nil || ok {
		t.Errorf("Get with the broker down: ok %v, error %v; want an error", ok, err)
	}

	srv.Start()
	// Another process writes while this one's watcher is not back yet, or
	// just after: either way a hit.
	_, other := connectKV(t, srv, time.Hour)
	if _, err := other.Put(t.Context(), "r2", []byte(`["two.example.com"]`)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		got, ok, err := c.Get(t.Context(), id)
		if err != nil || !ok {
			t.Errorf("Get %s after the restart = %q, %v, %v; want a hit", id, got, ok, err)
		}
	}
	eventually(t, "the watcher after the restart", c.isLive)
	eventually(t, "r2 in the index", func() bool { return c.held() == 2 })
	wantGet(t, c, kv, "r1", []string{"one.example.com"}, 0)
	wantGet(t, c, kv, "r2", []string{"two.example.com"}, 0)
	wantGet(t, c, kv, "absent", nil, 0)
}

func TestKVCacheBeyondCapReadsServer(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	_, raw := connectKV(t, srv, time.Hour)
	kv := newCountingKV(raw)
	c := NewKVCache(kv, append(testCacheOpts(), WithCacheMaxEntries(2))...)
	runCache(t, c)
	eventually(t, "the watcher's initial values", c.isLive)
	wantGet(t, c, kv, "absent", nil, 0)

	for i := range 3 {
		if err := c.Put(t.Context(), fmt.Sprint("c", i), []string{fmt.Sprintf("d%d.example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.held(); n != 2 {
		t.Fatalf("index holds %d entries, want the cap of 2", n)
	}
	wantGet(t, c, kv, "c0", []string{"d0.example.com"}, 0)
	wantGet(t, c, kv, "c1", []string{"d1.example.com"}, 0)
	// The key left out, and any key not held, now ask the server.
	wantGet(t, c, kv, "c2", []string{"d2.example.com"}, 1)
	wantGet(t, c, kv, "absent", nil, 1)
}
