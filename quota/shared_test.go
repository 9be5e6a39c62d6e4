package quota_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/internal/wait"
	"github.com/alert-domains/alert-domains/quota"
)

const consumer = "alert-domains"

var reg = quota.Registration{Cloud: "public", TenantID: "tenant", ClientID: "client"}

// replica is one process's view of the shared quota: its own connection and
// its own Shared, running until the test ends.
func replica(t *testing.T, url string, limits []connector.Limit) *quota.Shared {
	t.Helper()
	_, js := testenv.Connect(t, url)
	layout := quota.NewLayout(consumer, limits)
	if err := quota.Provision(t.Context(), js, layout, limits, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	return run(t, js, layout, reg, limits)
}

// run starts the Shared of r under limits, running until the test ends.
func run(t *testing.T, js jetstream.JetStream, layout quota.Layout, r quota.Registration, limits []connector.Limit) *quota.Shared {
	t.Helper()
	s, err := quota.NewShared(layout, r, limits, quota.WithHold(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx, js)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// maxInWindow is the largest number of times within any interval of length
// w (half-open: a time exactly w after another is outside its window).
func maxInWindow(times []time.Time, w time.Duration) int {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func TestSharedHoldsTheLimitAcrossReplicasAndUsesIt(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	limit := connector.Limit{Count: 10, Window: time.Second}
	replicas := []*quota.Shared{replica(t, url, []connector.Limit{limit}), replica(t, url, []connector.Limit{limit}), replica(t, url, []connector.Limit{limit})}
	const calls = 50
	stamps := storedTimes(t, url, quota.NewLayout(consumer, []connector.Limit{limit}).Stream(limit))
	grants := make(chan time.Time, calls)
	errs := make(chan error, calls)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, _, err := replicas[i%3].Acquire(t.Context())
			if err != nil {
				errs <- err
				return
			}
			grants <- time.Now()
			release()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(grants)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var times []time.Time
	for g := range grants {
		times = append(times, g)
	}
	if n := maxInWindow(stamps(calls), limit.Window); n > limit.Count {
		t.Errorf("%d slots stored within one %s window, limit %d", n, limit.Window, limit.Count)
	}
	if n := maxInWindow(times, limit.Window); n > limit.Count {
		t.Errorf("%d calls granted within one %s window, limit %d", n, limit.Window, limit.Count)
	}
	ideal := time.Duration(calls/limit.Count-1) * limit.Window
	if elapsed < ideal || elapsed > ideal*3/2 {
		t.Errorf("%d calls took %v, want between %v and %v (the quota's rate)", calls, elapsed, ideal, ideal*3/2)
	}
}

// storedTimes follows the stream from now on and returns a function that
// waits for n stored messages and returns their server timestamps.
func storedTimes(t *testing.T, url, stream string) func(n int) []time.Time {
	t.Helper()
	_, js := testenv.Connect(t, url)
	c, err := js.OrderedConsumer(t.Context(), stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		times []time.Time
	)
	cc, err := c.Consume(func(m jetstream.Msg) {
		if meta, err := m.Metadata(); err == nil {
			mu.Lock()
			times = append(times, meta.Timestamp)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return func(n int) []time.Time {
		testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(times) >= n
		}, "%d stored slots", n)
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), times...)
	}
}

// attachedPair is two replicas on one server, both attached (each has
// granted a call), under a quota that never fills.
func attachedPair(t *testing.T) (url string, a, b *quota.Shared) {
	t.Helper()
	_, url = testenv.EmbeddedJetStream(t)
	limits := []connector.Limit{{Count: 1000, Window: time.Minute}}
	a, b = replica(t, url, limits), replica(t, url, limits)
	for _, s := range []*quota.Shared{a, b} {
		if _, _, err := s.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return url, a, b
}

func TestSharedCooldownPausesEveryReplica(t *testing.T) {
	_, a, b := attachedPair(t)
	seen := time.Now()
	a.Cooldown(time.Second)
	testenv.Eventually(t, 500*time.Millisecond, 5*time.Millisecond, func() bool {
		return b.CooldownUntil().After(seen.Add(900 * time.Millisecond))
	}, "the other replica in cooldown within 500ms")
	_, waited, err := b.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Since(seen); got < 950*time.Millisecond {
		t.Errorf("the other replica's call started %v after the 429 with Retry-After 1s", got)
	}
	if waited < 500*time.Millisecond {
		t.Errorf("waited %v, want the rest of the cooldown", waited)
	}
}

// TestSharedCooldownWithoutItsWatch: a replica whose watch of the cooldown
// is lost (its consumer gone with a restarted node) and not yet re-created
// by the client library still pauses within seconds, from its read of the
// key.
func TestSharedCooldownWithoutItsWatch(t *testing.T) {
	url, a, b := attachedPair(t)
	_, js := testenv.Connect(t, url)
	stream, err := js.Stream(t.Context(), "KV_"+quota.CooldownBucket(consumer))
	if err != nil {
		t.Fatal(err)
	}
	for name := range stream.ListConsumers(t.Context()).Info() {
		if err := stream.DeleteConsumer(t.Context(), name.Name); err != nil {
			t.Fatal(err)
		}
	}
	seen := time.Now()
	a.Cooldown(time.Minute)
	testenv.Eventually(t, 3*time.Second, 10*time.Millisecond, func() bool {
		return b.CooldownUntil().After(seen.Add(50 * time.Second))
	}, "the other replica in cooldown within 3s without its watch")
}

func TestSharedSurvivesRestart(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	limits := []connector.Limit{{Count: 5, Window: time.Hour}}
	first := replica(t, url, limits)
	for range 5 {
		if _, _, err := first.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// A new process (its own connection, nothing in memory) finds the hour
	// used up.
	restarted := replica(t, url, limits)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := restarted.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a restarted process got a slot of a used-up window (err %v)", err)
	}
	if used := restarted.Used(time.Hour); used != 5 {
		t.Errorf("Used(1h) = %d, want 5", used)
	}
}

func TestSharedRefusalByALongerWindowFreesTheShorter(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	limits := []connector.Limit{{Count: 5, Window: time.Hour}, {Count: 2, Window: 2 * time.Hour}}
	s := replica(t, url, limits)
	for range 2 {
		if _, _, err := s.Acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third call granted past the 2/2h limit (err %v)", err)
	}
	if used := s.Used(time.Hour); used != 2 {
		t.Errorf("Used(1h) = %d after refused attempts, want 2 (refused attempts rolled back)", used)
	}
}

func TestSharedFailsClosed(t *testing.T) {
	srv, url := testenv.EmbeddedJetStream(t)
	limits := []connector.Limit{{Count: 100, Window: time.Minute}}
	s := replica(t, url, limits)
	if _, _, err := s.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, _, err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call was granted while the quota state was unreachable (err %v)", err)
	}
}

func TestVerifyNamesWhatIsMissing(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, url)
	limits := []connector.Limit{{Count: 100, Window: time.Minute}}
	layout := quota.NewLayout(consumer, limits)
	err := quota.Verify(t.Context(), js, layout, limits)
	if !errors.Is(err, quota.ErrMissing) {
		t.Fatalf("Verify on an empty server = %v, want ErrMissing", err)
	}
	if err := quota.Provision(t.Context(), js, layout, limits, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := quota.Verify(t.Context(), js, layout, limits); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), layout.Stream(limits[0])); errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal("stream missing after Provision")
	}
}

// TestSharedCountsOfOneWindowDiffer: two app registrations (two tenants)
// whose counts of one window differ, 2/1h (the primary count, as
// DEFENDER_RATE_LIMITS gives it) and 5/1h, are each held to their own
// count by the server: each is granted exactly its count, and the next call
// of each waits. The primary count keeps the stream name it always had;
// the other is a stream of its own, which Verify names when it is missing.
func TestSharedCountsOfOneWindowDiffer(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, url)
	small := []connector.Limit{{Count: 2, Window: time.Hour}}
	large := []connector.Limit{{Count: 5, Window: time.Hour}}
	layout := quota.NewLayout(consumer, quota.Primary(small, large))
	all := quota.Enforced(small, large)
	if err := quota.Provision(t.Context(), js, layout, all, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := layout.Stream(small[0]), "QUOTA_alert-domains_3600000ms"; got != want {
		t.Errorf("stream of the primary count %q, want %q (the name before counts could differ)", got, want)
	}
	if got, want := layout.Stream(large[0]), "QUOTA_alert-domains_3600000ms_5"; got != want {
		t.Errorf("stream of the other count %q, want %q", got, want)
	}

	regSmall := quota.Registration{Cloud: "public", TenantID: "contoso", ClientID: "client"}
	regLarge := quota.Registration{Cloud: "public", TenantID: "fabrikam", ClientID: "client"}
	for _, c := range []struct {
		reg    quota.Registration
		limits []connector.Limit
	}{{regSmall, small}, {regLarge, large}} {
		s := run(t, js, layout, c.reg, c.limits)
		n := c.limits[0].Count
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		for i := range n {
			if _, _, err := s.Acquire(ctx); err != nil {
				t.Fatalf("%s: call %d of %d refused: %v", c.reg, i+1, n, err)
			}
		}
		cancel()
		ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
		if _, _, err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: call %d granted past its %d/1h (err %v)", c.reg, n+1, n, err)
		}
		cancel()
		if used := s.Used(time.Hour); used != n {
			t.Errorf("%s: Used(1h) = %d, want %d", c.reg, used, n)
		}
		// The server itself refuses the next slot on the registration's
		// subject, whatever the process.
		_, err := js.Publish(t.Context(), layout.Subject(c.limits[0], c.reg.Key()), nil)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Description, "maximum messages per subject") {
			t.Errorf("%s: publish of slot %d: %v, want refused by the stream", c.reg, n+1, err)
		}
	}

	use, err := quota.ReadUse(t.Context(), js, layout, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(use) != 2 || use[0].Limit != small[0] || use[0].ByKey[regSmall.Key()] != 2 || use[0].ByKey[regLarge.Key()] != 0 ||
		use[1].Limit != large[0] || use[1].ByKey[regLarge.Key()] != 5 || use[1].ByKey[regSmall.Key()] != 0 {
		t.Errorf("ReadUse = %+v", use)
	}

	if err := js.DeleteStream(t.Context(), layout.Stream(large[0])); err != nil {
		t.Fatal(err)
	}
	err = quota.Verify(t.Context(), js, layout, all)
	if !errors.Is(err, quota.ErrMissing) || !strings.Contains(err.Error(), layout.Stream(large[0])) {
		t.Errorf("Verify without the stream of 5/1h = %v, want ErrMissing naming it", err)
	}
}

// Run ends when its context ends, whenever that is. nats.go closes a key
// watcher's updates only when the context ends after the watch was set up;
// a cancellation within the few microseconds of the set-up once left Run
// waiting for ever (seen in a goroutine dump of a hung test run). The
// cancellations here are spread over the first 15 ms of Run, set-up
// included.
func TestSharedRunEndsWithItsContext(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, url)
	limits := []connector.Limit{{Count: 1000, Window: time.Minute}}
	layout := quota.NewLayout(consumer, limits)
	if err := quota.Provision(t.Context(), js, layout, limits, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	// The set-up takes a few round trips to the server: cancel at points
	// spread over them.
	for i := range 300 {
		s, err := quota.NewShared(layout, reg, limits)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.Run(ctx, js)
		}()
		time.AfterFunc(time.Duration(i%150)*100*time.Microsecond, cancel)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Run still running 10s after its context ended (cancelled %v after start)", time.Duration(i%150)*100*time.Microsecond)
		}
	}
}

// TestSharedGrantsASlotOnlyWithAWorker: work that waits for the quota gives
// its worker back to the pool, and takes one again before its slot is
// granted, not after: a slot lives MaxAge from its grant, so a call that
// waited longer for a worker would go out after its slot had expired,
// unseen by every other replica.
func TestSharedGrantsASlotOnlyWithAWorker(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	limits := []connector.Limit{{Count: 1, Window: 300 * time.Millisecond}}
	s := replica(t, url, limits)
	first, _, err := s.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var back time.Time // the last time the pool gave the worker back
	pool := wait.Waiter(func(bool) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			back = time.Now()
		}
	})
	type acquired struct {
		release func()
		err     error
	}
	second := make(chan acquired, 1)
	go func() {
		release, _, err := s.Acquire(wait.With(t.Context(), pool))
		second <- acquired{release, err}
	}()
	first()
	var got acquired
	select {
	case got = <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("the second call was not granted its slot")
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	defer got.release()

	_, js := testenv.Connect(t, url)
	layout := quota.NewLayout(consumer, limits)
	st, err := js.Stream(t.Context(), layout.Stream(limits[0]))
	if err != nil {
		t.Fatal(err)
	}
	slot, err := st.GetLastMsgForSubject(t.Context(), layout.Subject(limits[0], reg.Key()))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if back.IsZero() {
		t.Fatal("the second call never waited: the test proves nothing")
	}
	if !slot.Time.After(back) {
		t.Errorf("slot granted at %s, worker back at %s: the slot was granted to work without a worker",
			slot.Time.Format("15:04:05.000000"), back.Format("15:04:05.000000"))
	}
}
