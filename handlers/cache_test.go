package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/alert-domains/alert-domains/connector"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

const (
	cacheStream  = "RESULTS"
	cacheSuccess = "res.success"
	cacheFailure = "res.failure"
)

// resultStream connects to url and creates the result stream the cache
// reads, with the subjects of the service's result stream.
func resultStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	_, js := testenv.Connect(t, url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	_, err := js.CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{
		Name:     cacheStream,
		Subjects: []string{cacheSuccess, cacheFailure, cacheSuccess + ".*", cacheFailure + ".*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// storeResult stores a result as the service (this replica or another)
// stores it, and returns its stream sequence.
func storeResult(t *testing.T, js jetstream.JetStream, subject string, r *message.Result) uint64 {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(t.Context(), subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func success(tenant, alertID string, cached bool, domains ...string) *message.Result {
	r := message.Success(alertID, domains, 1, cached, time.Now())
	r.Tenant = tenant
	return r
}

// runCache runs c until the test ends.
func runCache(t *testing.T, c *ResultCache) {
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

func waitReady(t *testing.T, c *ResultCache) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the cache did not read the stored results within 10s")
	}
}

// eventually polls cond until it holds, or fails the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 5*time.Millisecond, cond, "%s", what)
}

func testCacheOpts(extra ...ResultCacheOption) []ResultCacheOption {
	return append([]ResultCacheOption{withCacheTiming(20*time.Millisecond, 10*time.Millisecond, 50*time.Millisecond)}, extra...)
}

func wantGet(t *testing.T, c *ResultCache, key string, want []string) {
	t.Helper()
	got, ok, err := c.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	if want == nil && ok {
		t.Errorf("Get %s = %q, want a miss", key, got)
	}
	if want != nil && (!ok || !slices.Equal(got, want)) {
		t.Errorf("Get %s = %q, %v, want %q", key, got, ok, want)
	}
}

func hits(c *ResultCache, key string) bool {
	_, ok, _ := c.Get(context.Background(), key)
	return ok
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), cacheStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// A Put answers at once in this process and writes nothing to the server:
// the cache costs no write of its own.
func TestResultCachePutIsLocalAndImmediate(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	js := resultStream(t, url)
	c := NewResultCache(js, cacheStream, cacheSuccess, time.Hour, testCacheOpts()...)
	runCache(t, c)
	waitReady(t, c)

	if err := c.Put(t.Context(), "a1", []string{"one.example.com"}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, "a1", []string{"one.example.com"})
	wantGet(t, c, "absent", nil)
	if err := c.Put(t.Context(), "empty", nil); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, "empty", []string{})
	if n := streamMsgs(t, js); n != 0 {
		t.Errorf("the result stream holds %d messages after two puts, want 0", n)
	}
	// What Get returns is the caller's to change.
	got, _, _ := c.Get(t.Context(), "a1")
	got[0] = "changed"
	wantGet(t, c, "a1", []string{"one.example.com"})
}

// Another replica's success results answer here: success results only,
// answers given from a cache are not indexed again, and each tenant's
// alert has its own key.
func TestResultCacheReadsStoredResults(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	js := resultStream(t, url)
	c := NewResultCache(js, cacheStream, cacheSuccess, time.Hour, testCacheOpts(WithCachePlainTenant("default"))...)
	runCache(t, c)
	waitReady(t, c)

	storeResult(t, js, cacheSuccess, success("default", "p1", false, "plain.example.com"))
	storeResult(t, js, cacheSuccess+".acme", success("acme", "p1", false, "acme.example.com"))
	failure := message.Failure("f1", fmt.Errorf("lookup failed"), 1, time.Now())
	storeResult(t, js, cacheFailure, failure)
	// A success on the failure subject is not the service's: not read.
	storeResult(t, js, cacheFailure, success("default", "f2", false, "wrong.example.com"))
	storeResult(t, js, cacheSuccess, success("default", "c1", true, "cached.example.com"))
	last := storeResult(t, js, cacheSuccess, success("default", "p2", false))

	eventually(t, "the last result in the index", func() bool { return hits(c, "p2") })
	wantGet(t, c, "p1", []string{"plain.example.com"})
	wantGet(t, c, "acme.p1", []string{"acme.example.com"})
	wantGet(t, c, "p2", []string{})
	for _, key := range []string{"f1", "f2", "c1", "acme.p2", "default.p1"} {
		wantGet(t, c, key, nil)
	}
	if CacheKey("default", "acme", connector.MDE, "p1") != "acme.p1" || CacheKey("default", "default", "", "p1") != "p1" ||
		CacheKey("default", "acme", connector.Graph, "p1") == CacheKey("default", "acme", connector.MDE, "p1") {
		t.Errorf("CacheKey does not name the tenant's entries as the index does")
	}
	c.mu.RLock()
	next := c.next
	c.mu.RUnlock()
	if next != last+1 {
		t.Errorf("next sequence %d, want %d", next, last+1)
	}
}

// A cache started after results were stored has them once Ready, and reads
// those of the last TTL only.
func TestResultCacheReadyHoldsWhatWasStored(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	js := resultStream(t, url)
	for i := range 50 {
		storeResult(t, js, cacheSuccess, success("", fmt.Sprint("s", i), false, fmt.Sprintf("d%d.example.com", i)))
	}
	storeResult(t, js, cacheFailure, message.Failure("f", fmt.Errorf("x"), 1, time.Now()))

	c := NewResultCache(js, cacheStream, cacheSuccess, time.Hour, testCacheOpts()...)
	runCache(t, c)
	waitReady(t, c)
	for i := range 50 {
		wantGet(t, c, fmt.Sprint("s", i), []string{fmt.Sprintf("d%d.example.com", i)})
	}

	// A cache whose clock is an hour on: the same results are too old.
	later := func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	old := NewResultCache(js, cacheStream, cacheSuccess, time.Hour, testCacheOpts(withCacheClock(later))...)
	runCache(t, old)
	waitReady(t, old)
	if n := old.Len(); n != 0 {
		t.Errorf("a cache an hour later holds %d results, want 0", n)
	}
	wantGet(t, old, "s0", nil)

	// An empty stream: ready at once.
	_, url2 := testenv.EmbeddedJetStream(t)
	empty := NewResultCache(resultStream(t, url2), cacheStream, cacheSuccess, time.Hour, testCacheOpts()...)
	runCache(t, empty)
	waitReady(t, empty)
}

// An entry answers for the TTL after the call that produced it; a later
// answer from the cache does not extend it; the sweep frees expired ones.
func TestResultCacheExpiry(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	js := resultStream(t, url)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := NewResultCache(js, cacheStream, cacheSuccess, time.Minute, testCacheOpts(withCacheClock(clock))...)
	runCache(t, c)
	waitReady(t, c)

	if err := c.Put(t.Context(), "e1", []string{"one.example.com"}); err != nil {
		t.Fatal(err)
	}
	advance(40 * time.Second)
	if err := c.Put(t.Context(), "e2", []string{"two.example.com"}); err != nil {
		t.Fatal(err)
	}
	// e1 answered again from the cache, and that result stored.
	storeResult(t, js, cacheSuccess, success("", "e1", true, "one.example.com"))
	advance(30 * time.Second)
	wantGet(t, c, "e1", nil)
	wantGet(t, c, "e2", []string{"two.example.com"})
	eventually(t, "the sweep to free e1", func() bool { return c.Len() == 1 })
	advance(time.Minute)
	wantGet(t, c, "e2", nil)
	eventually(t, "the sweep to free e2", func() bool { return c.Len() == 0 })
}

// Beyond its bound, the index drops its oldest entries.
func TestResultCacheEvictsOldest(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	js := resultStream(t, url)
	c := NewResultCache(js, cacheStream, cacheSuccess, time.Hour, testCacheOpts(WithCacheMaxEntries(2))...)
	for i := range 3 {
		if err := c.Put(t.Context(), fmt.Sprint("c", i), []string{fmt.Sprintf("d%d.example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Len(); n != 2 {
		t.Fatalf("index holds %d entries, want the bound of 2", n)
	}
	wantGet(t, c, "c0", nil)
	wantGet(t, c, "c1", []string{"d1.example.com"})
	wantGet(t, c, "c2", []string{"d2.example.com"})
	// A key answered again many times leaves no growing trail behind it.
	for range 5000 {
		if err := c.Put(t.Context(), "c2", []string{"d2.example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.RLock()
	trail := len(c.order)
	c.mu.RUnlock()
	if trail > 2*2+1024+1 {
		t.Errorf("%d order items for 2 entries", trail)
	}
	wantGet(t, c, "c1", []string{"d1.example.com"})
}

// Through a restart of the server the index keeps what it holds and reads
// the results stored after it.
func TestResultCacheBrokerRestart(t *testing.T) {
	srv := testenv.RestartableJetStream(t)
	js := resultStream(t, srv.URL())
	c := NewResultCache(js, cacheStream, cacheSuccess, time.Hour, testCacheOpts()...)
	runCache(t, c)
	waitReady(t, c)
	storeResult(t, js, cacheSuccess, success("", "r1", false, "one.example.com"))
	eventually(t, "r1 in the index", func() bool { return hits(c, "r1") })

	srv.Stop()
	wantGet(t, c, "r1", []string{"one.example.com"}) // down: what it holds still answers
	srv.Start()
	_, other := testenv.Connect(t, srv.URL())
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		_, err := other.Stream(t.Context(), cacheStream)
		return err == nil
	}, "the result stream back")
	storeResult(t, other, cacheSuccess, success("", "r2", false, "two.example.com"))
	eventually(t, "r2, stored after the restart, in the index", func() bool { return hits(c, "r2") })
	wantGet(t, c, "r1", []string{"one.example.com"})
}
