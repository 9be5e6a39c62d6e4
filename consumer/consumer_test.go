package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/internal/wait"
	"github.com/alert-domains/alert-domains/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	stream  = "REQ"
	subject = "req"
	durable = "workers"
)

type fixture struct {
	js  jetstream.JetStream
	cfg jetstream.ConsumerConfig
}

func newFixture(t *testing.T, ackWait time.Duration, maxDeliver int) *fixture {
	t.Helper()
	srv, _ := testenv.EmbeddedJetStream(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: stream, Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	cfg := jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: maxDeliver, MaxAckPending: 1000}
	if _, err := js.CreateOrUpdateConsumer(t.Context(), stream, cfg); err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, cfg: cfg}
}

func (f *fixture) bind(ctx context.Context) (jetstream.Consumer, error) {
	return f.js.CreateOrUpdateConsumer(ctx, stream, f.cfg)
}

func (f *fixture) publish(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := f.js.Publish(t.Context(), subject, fmt.Appendf(nil, "msg-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// run starts c and returns a function that stops it and reports Run's error.
func run(t *testing.T, c *consumer.Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 5*time.Millisecond, cond, "%s", what)
}

func ackPending(t *testing.T, f *fixture) (pending, ackPending uint64) {
	t.Helper()
	c, err := f.js.Consumer(t.Context(), stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info := c.CachedInfo()
	return info.NumPending, uint64(info.NumAckPending)
}

func TestConcurrencyIsBounded(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	const n, limit = 200, 8
	var cur, peak, handled atomic.Int64
	release := make(chan struct{})
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		c := cur.Add(1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		if handled.Load() < limit {
			<-release
		}
		cur.Add(-1)
		handled.Add(1)
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{Concurrency: limit})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, n)
	stop := run(t, c)
	waitFor(t, "all slots busy", func() bool { return cur.Load() == limit })
	if got := c.InFlight(); got != limit {
		t.Errorf("InFlight() = %d, want %d", got, limit)
	}
	close(release)
	waitFor(t, "every message handled", func() bool { return handled.Load() == n })
	if p := peak.Load(); p > limit {
		t.Errorf("peak concurrency %d, limit %d", p, limit)
	}
	waitFor(t, "every message acknowledged", func() bool { p, a := ackPending(t, f); return p == 0 && a == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestProgressAcksPreventRedelivery(t *testing.T) {
	f := newFixture(t, time.Second, 5)
	var calls atomic.Int64
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		calls.Add(1)
		// Slow work: three ack waits long.
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{AckWait: time.Second, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, 1)
	run(t, c)
	waitFor(t, "the slow message acknowledged", func() bool { p, a := ackPending(t, f); return p == 0 && a == 0 && calls.Load() == 1 })
	if n := calls.Load(); n != 1 {
		t.Errorf("slow message handled %d times, want 1", n)
	}
}

func TestSettleActions(t *testing.T) {
	f := newFixture(t, 30*time.Second, 3)
	var mu sync.Mutex
	deliveries := map[string][]uint64{}
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		mu.Lock()
		deliveries[string(d.Data)] = append(deliveries[string(d.Data)], d.NumDelivered)
		mu.Unlock()
		switch string(d.Data) {
		case "retry-once":
			if d.NumDelivered == 1 {
				return consumer.Outcome{Action: consumer.Retry, Delay: time.Second}
			}
		case "terminate":
			return consumer.Outcome{Action: consumer.Terminate, Result: &message.Result{Status: message.StatusFailure, Error: &message.ErrorInfo{Kind: "invalid_request"}}}
		}
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{MaxDeliver: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"retry-once", "terminate", "ack"} {
		if _, err := f.js.Publish(t.Context(), subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	run(t, c)
	waitFor(t, "the retried message redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries["retry-once"]) == 2
	})
	if gap := time.Since(start); gap < time.Second {
		t.Errorf("retry redelivered after %v, want the 1s delay", gap)
	}
	waitFor(t, "nothing pending", func() bool { p, a := ackPending(t, f); return p == 0 && a == 0 })
	mu.Lock()
	defer mu.Unlock()
	if got := deliveries["terminate"]; len(got) != 1 {
		t.Errorf("terminated message delivered %v times", got)
	}
	if got := deliveries["ack"]; len(got) != 1 {
		t.Errorf("acknowledged message delivered %v times", got)
	}
}

func TestRebindsAfterConsumerDeleted(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	var handled atomic.Int64
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		handled.Add(1)
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{RebindMin: 10 * time.Millisecond, RebindMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, 5)
	run(t, c)
	waitFor(t, "first messages", func() bool { return handled.Load() == 5 })
	waitFor(t, "ready", func() bool { return c.Ready() == nil })
	if err := f.js.DeleteConsumer(t.Context(), stream, durable); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer created again", func() bool {
		_, err := f.js.Consumer(t.Context(), stream, durable)
		return err == nil
	})
	// The re-created consumer starts from the stream's start in this test's
	// binder, so count from there: 5 old + 5 new.
	f.publish(t, 5)
	waitFor(t, "messages after the deletion", func() bool { return handled.Load() >= 10 })
}

func TestShutdownFinishesInFlightWork(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	started := make(chan struct{}, 1)
	finish := make(chan struct{})
	var finished atomic.Bool
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		started <- struct{}{}
		<-finish
		finished.Store(true)
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{Concurrency: 1, ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, 1)
	stop := run(t, c)
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while work was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(finish)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Error("in-flight work did not finish")
	}
	waitFor(t, "acknowledged", func() bool { p, a := ackPending(t, f); return p == 0 && a == 0 })
}

func TestShutdownTimeoutHandsBack(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	started := make(chan struct{}, 1)
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		started <- struct{}{}
		<-ctx.Done()
		return consumer.Outcome{Action: consumer.HandBack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{Concurrency: 1, ShutdownTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, 1)
	stop := run(t, c)
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Handed back: another consumer gets it at once, long before the 30s
	// ack wait would have redelivered it.
	redelivered := make(chan uint64, 1)
	h2 := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		redelivered <- d.NumDelivered
		return consumer.Outcome{Action: consumer.Ack}
	}
	c2, err := consumer.New(f.bind, h2, consumer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c2)
	select {
	case n := <-redelivered:
		if n != 2 {
			t.Errorf("handed-back message arrived as delivery %d, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handed-back message was not redelivered promptly")
	}
}

// TestRunEndsWhenConnectionClosed: a connection closed for good (nats.go
// reports nats.ErrConnectionClosed) ends Run with an error, whether it is
// closed while pulling or before binding, instead of trying again forever.
func TestRunEndsWhenConnectionClosed(t *testing.T) {
	f := newFixture(t, 5*time.Second, 3)
	nc := f.js.Conn()
	handler := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, handler, consumer.Config{FetchWait: 100 * time.Millisecond, RebindMin: 10 * time.Millisecond, RebindMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context()) }()
	deadline := time.After(10 * time.Second)
	for c.Ready() != nil {
		select {
		case <-deadline:
			t.Fatal("never ready")
		case <-time.After(5 * time.Millisecond):
		}
	}
	nc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, jetstream.ErrConnectionClosed) {
			t.Errorf("Run returned %v, want ErrConnectionClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still runs 10s after the connection was closed")
	}
}

// TestQuotaWaitsParkWithoutWorkers: messages that wait for their quota
// (an abandonable wait) give their workers to the messages behind them,
// and go on once their wait ends; no more than CONCURRENCY messages are
// processed (not waiting) at once.
func TestQuotaWaitsParkWithoutWorkers(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	const limit, waiting, others = 2, 6, 5
	quota := make(chan struct{})
	var busy, peak, done atomic.Int64
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		var i int
		fmt.Sscanf(string(d.Data), "msg-%d", &i)
		if i < waiting {
			end := wait.Begin(ctx, false)
			select {
			case <-quota:
			case <-ctx.Done():
			}
			end()
		}
		b := busy.Add(1)
		for p := peak.Load(); b > p && !peak.CompareAndSwap(p, b); p = peak.Load() {
		}
		busy.Add(-1)
		done.Add(1)
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{Concurrency: limit})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, waiting+others)
	stop := run(t, c)
	// The last waiting message may park after the others are done.
	waitFor(t, "the messages behind the quota waits handled, every wait parked", func() bool {
		return done.Load() == others && c.Parked() == waiting
	})
	close(quota)
	waitFor(t, "every message handled", func() bool { return done.Load() == waiting+others })
	waitFor(t, "every message acknowledged", func() bool { p, a := ackPending(t, f); return p == 0 && a == 0 })
	if p := peak.Load(); p > limit {
		t.Errorf("%d messages processed at once, limit %d", p, limit)
	}
	if n := c.Parked(); n != 0 {
		t.Errorf("Parked() = %d after every wait ended", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestParkedLimit: beyond the limit, a quota wait holds its worker.
func TestParkedLimit(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	quota := make(chan struct{})
	var done atomic.Int64
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		end := wait.Begin(ctx, false)
		<-quota
		end()
		done.Add(1)
		return consumer.Outcome{Action: consumer.Ack}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{Concurrency: 2, MaxParked: 3})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, 10)
	stop := run(t, c)
	waitFor(t, "3 parked and 2 waiting with their workers", func() bool { return c.Parked() == 3 && c.InFlight() == 5 })
	close(quota)
	waitFor(t, "every message handled", func() bool { return done.Load() == 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownHandsBackParkedAtOnce: at shutdown, parked messages are
// handed back at once, without waiting for a worker that is still busy.
func TestShutdownHandsBackParkedAtOnce(t *testing.T) {
	f := newFixture(t, 30*time.Second, 5)
	busy, release := make(chan struct{}), make(chan struct{})
	var handedBack atomic.Int64
	h := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		if string(d.Data) == "msg-3" {
			close(busy)
			<-release
			return consumer.Outcome{Action: consumer.Ack}
		}
		end := wait.Begin(ctx, true) // as the quota marks its wait
		<-ctx.Done()
		end()
		handedBack.Add(1)
		return consumer.Outcome{Action: consumer.HandBack, Err: ctx.Err()}
	}
	c, err := consumer.New(f.bind, h, consumer.Config{Concurrency: 1, ShutdownTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, 4)
	stop := run(t, c)
	<-busy
	if n := c.Parked(); n != 3 {
		t.Fatalf("%d parked before the busy message, want 3", n)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	waitFor(t, "the parked messages handed back", func() bool { return handedBack.Load() == 3 })
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
