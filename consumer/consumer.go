// Package consumer runs a handler over a durable JetStream pull consumer's
// messages, a bounded number at once, each kept alive and settled by Decide.
package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/internal/wait"
)

// ErrNotBound is reported by Ready while not bound to the durable consumer.
var ErrNotBound = errors.New("not bound to the consumer")

// Binder finds (or creates) the durable consumer to pull from.
type Binder func(ctx context.Context) (jetstream.Consumer, error)

// Consumer pulls request messages and hands them to a handler.
type Consumer struct {
	bind    Binder
	handler Handler
	cfg     Config

	inFlight atomic.Int64
	pool     atomic.Pointer[pool]
	notReady atomic.Pointer[error] // nil while bound and pulling

	stopping    context.Context // ended at shutdown, which cancels every abandonable wait
	stop        context.CancelFunc
	abandonable atomic.Int64 // messages in an abandonable wait
}

// Config is how a Consumer runs; a zero field takes its default.
type Config struct {
	Concurrency     int                           // messages handled at once, never more held (default 16)
	MaxParked       int                           // messages waiting without a worker (default DefaultMaxParked)
	AckWait         time.Duration                 // the server's redelivery timer, for progress acknowledgements (default 30s)
	MaxDeliver      int                           // tells handlers which delivery is the last (default: none)
	ShutdownTimeout time.Duration                 // in-flight work's time after the run context ends, then handed back (default 25s)
	FetchWait       time.Duration                 // how long one fetch waits for messages (default 5s)
	RebindMin       time.Duration                 // first wait before binding again (default 250ms)
	RebindMax       time.Duration                 // longest such wait (default 5s)
	OnInfo          func(*jetstream.ConsumerInfo) // optional, every InfoEvery while bound
	InfoEvery       time.Duration
	Logger          *slog.Logger // default: discard
}

// DefaultMaxParked is how many messages may wait without a worker (tens of KiB each).
const DefaultMaxParked = 4096

// ErrHandedBack cancels a message that only waited for the quota when shutdown began.
var ErrHandedBack = errors.New("handed back at shutdown while waiting for the quota")

// shutdownGrace is how long Run waits for work after cancelling it at the timeout.
const shutdownGrace = 2 * time.Second

// New returns a consumer that runs handler on each message of bind's consumer.
func New(bind Binder, handler Handler, cfg Config) (*Consumer, error) {
	if bind == nil || handler == nil {
		return nil, errors.New("consumer: binder and handler are required")
	}
	switch {
	case cfg.Concurrency < 0, cfg.MaxParked < 0, cfg.AckWait < 0, cfg.ShutdownTimeout < 0, cfg.RebindMin < 0, cfg.RebindMax < 0:
		return nil, errors.New("consumer: negative settings")
	case cfg.FetchWait != 0 && cfg.FetchWait < 100*time.Millisecond:
		return nil, errors.New("consumer: fetch wait must be at least 100ms")
	case cfg.OnInfo != nil && cfg.InfoEvery <= 0:
		return nil, errors.New("consumer: info handler needs a positive interval")
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 16)
	cfg.MaxParked = cmp.Or(cfg.MaxParked, DefaultMaxParked)
	cfg.AckWait = cmp.Or(cfg.AckWait, 30*time.Second)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 25*time.Second)
	cfg.FetchWait = cmp.Or(cfg.FetchWait, 5*time.Second)
	cfg.RebindMin = cmp.Or(cfg.RebindMin, 250*time.Millisecond)
	cfg.RebindMax = max(cmp.Or(cfg.RebindMax, 5*time.Second), cfg.RebindMin)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	c := &Consumer{bind: bind, handler: handler, cfg: cfg}
	c.stopping, c.stop = context.WithCancel(context.Background())
	c.setNotReady(ErrNotBound)
	return c, nil
}

// Ready returns nil while bound and pulling, or the reason it is not.
func (c *Consumer) Ready() error {
	if err := c.notReady.Load(); err != nil {
		return *err
	}
	return nil
}

// InFlight is the number of messages being handled now.
func (c *Consumer) InFlight() int { return int(c.inFlight.Load()) }

func (c *Consumer) setNotReady(err error) { c.notReady.Store(&err) }

// Run pulls and handles messages until ctx ends, then drains in order and
// returns nil; it fails only when it cannot go on (the connection closed).
func (c *Consumer) Run(ctx context.Context) error {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// A pool, not a goroutine per message: fresh stacks cost several percent of CPU.
	p := &pool{slots: make(chan struct{}, c.cfg.Concurrency), jobs: make(chan jetstream.Msg, c.cfg.Concurrency), max: int64(c.cfg.MaxParked)}
	c.pool.Store(p)
	p.work = func() {
		for msg := range p.jobs {
			parked, holdsSlot := c.process(workCtx, msg, p)
			c.inFlight.Add(-1)
			if holdsSlot {
				<-p.slots
			}
			if parked {
				// A worker took this one's place when it parked.
				return
			}
		}
	}
	for range c.cfg.Concurrency {
		p.wg.Go(p.work)
	}

	err := c.pull(ctx, p)
	close(p.jobs)
	c.setNotReady(errors.New("shutting down"))
	if n := c.abandonable.Load(); n > 0 {
		c.cfg.Logger.Info("handed back requests waiting for the quota", slog.Int64("requests", n))
	}
	c.stop()

	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	if n := c.InFlight(); n > 0 {
		c.cfg.Logger.Info("waiting for in-flight requests", slog.Int("in_flight", n), slog.Duration("timeout", c.cfg.ShutdownTimeout))
	}
	select {
	case <-done:
	case <-time.After(c.cfg.ShutdownTimeout):
		c.cfg.Logger.Warn("shutdown timeout: handing back in-flight requests", slog.Int("in_flight", c.InFlight()))
		cancelWork()
		select {
		case <-done:
		case <-time.After(shutdownGrace):
			// Work ignoring cancellation is left behind, redelivered after the ack wait.
			c.cfg.Logger.Warn("in-flight work did not stop, leaving it", slog.Int("in_flight", c.InFlight()), slog.Duration("grace", shutdownGrace))
		}
	}
	return err
}

// waiter parks a message during each wait; shutdown cancels an abandonable one.
func (c *Consumer) waiter(k *parker, cancel context.CancelCauseFunc) wait.Waiter {
	return func(abandonable bool) (end func()) {
		endPark := k.watch()
		if !abandonable {
			return endPark
		}
		c.abandonable.Add(1)
		stopAbandon := context.AfterFunc(c.stopping, func() { cancel(ErrHandedBack) })
		return func() { stopAbandon(); c.abandonable.Add(-1); endPark() }
	}
}

type pool struct {
	slots  chan struct{}
	jobs   chan jetstream.Msg
	wg     sync.WaitGroup
	work   func()
	parked atomic.Int64
	max    int64
}

// parker parks one delivery during each of its waits. retire: it parked
// (its worker was replaced); unslotted: its wait was abandoned at shutdown.
type parker struct {
	ctx       context.Context
	p         *pool
	retire    atomic.Bool
	unslotted atomic.Bool
}

func (k *parker) watch() (end func()) {
	unslotted := k.unslotted.Load()
	if unslotted || k.p.parked.Add(1) > k.p.max {
		if !unslotted {
			k.p.parked.Add(-1)
		}
		return func() {}
	}
	<-k.p.slots // the slot this message's worker holds
	if !k.retire.Swap(true) {
		k.p.wg.Go(k.p.work) // at the first park, a worker takes this one's place
	}
	return func() {
		k.p.parked.Add(-1)
		if k.ctx.Err() != nil {
			k.unslotted.Store(true)
			return
		}
		k.p.slots <- struct{}{}
	}
}

// pull binds and fetches until ctx ends or the connection closes for good.
func (c *Consumer) pull(ctx context.Context, p *pool) error {
	wait := c.cfg.RebindMin
	for ctx.Err() == nil {
		cons, err := c.bind(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if connectionClosed(err) {
				c.setNotReady(err)
				return fmt.Errorf("bind consumer: %w", jetstream.ErrConnectionClosed)
			}
			c.setNotReady(fmt.Errorf("bind consumer: %w", err))
			c.cfg.Logger.Warn("cannot bind to the consumer, trying again", slog.Any("error", err), slog.Duration("retry_in", wait))
			if !timing.Sleep(ctx, wait, nil) {
				return nil
			}
			wait = min(wait*2, c.cfg.RebindMax)
			continue
		}
		c.notReady.Store(nil)
		c.cfg.Logger.Info("pulling requests", slog.String("consumer", cons.CachedInfo().Name), slog.String("stream", cons.CachedInfo().Stream), slog.Int("concurrency", c.cfg.Concurrency))
		stopInfo := c.watchInfo(ctx, cons)
		err = c.fetch(ctx, cons, p)
		stopInfo()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		c.setNotReady(err)
		if connectionClosed(err) {
			return jetstream.ErrConnectionClosed
		}
		c.cfg.Logger.Warn("pulling stopped, binding again", slog.Any("error", err))
		wait = c.cfg.RebindMin
	}
	return nil
}

// fetch pulls exactly as many messages as there are free workers.
func (c *Consumer) fetch(ctx context.Context, cons jetstream.Consumer, p *pool) error {
	slots, jobs := p.slots, p.jobs
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		n := 1
	free:
		for n < c.cfg.Concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break free
			}
		}
		wait := c.cfg.FetchWait
		if p.parked.Load() > 0 {
			wait = min(wait, parkedFetchWait)
		}
		fctx, cancel := context.WithTimeout(ctx, wait)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			release(slots, n)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if ctx.Err() != nil {
				// Shutdown began while the fetch was open: hand it back.
				c.settle(msg, Outcome{Action: Decide(Facts{Interrupted: true})}, 0)
				<-slots
				continue
			}
			c.inFlight.Add(1)
			jobs <- msg
		}
		cancel()
		release(slots, n-got)
		if ctx.Err() != nil {
			return nil
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		c.notReady.Store(nil)
	}
}

// parkedFetchWait bounds a fetch's wait while messages are parked.
const parkedFetchWait = 100 * time.Millisecond

// errCodeNoSuitablePeers is the server's "no suitable peers for placement".
const errCodeNoSuitablePeers jetstream.ErrorCode = 10005

// Transient reports whether err is one JetStream gives while a cluster elects
// a leader, moves peers or has not heard from every peer yet: worth trying again.
func Transient(err error) bool {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		return apiErr.Code == 503 || apiErr.Code == 408 || apiErr.ErrorCode == errCodeNoSuitablePeers
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// connectionClosed reports whether err means the connection closed for good.
func connectionClosed(err error) bool {
	return errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed)
}

// release frees n worker slots taken for a fetch that brought fewer messages.
func release(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

func (c *Consumer) watchInfo(ctx context.Context, cons jetstream.Consumer) (stop func()) {
	if c.cfg.OnInfo == nil {
		return func() {}
	}
	c.cfg.OnInfo(cons.CachedInfo())
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for timing.Sleep(ctx, c.cfg.InfoEvery, nil) {
			if info, err := cons.Info(ctx); err == nil {
				c.cfg.OnInfo(info)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// process runs the handler on one message and settles it.
func (c *Consumer) process(ctx context.Context, msg jetstream.Msg, p *pool) (parked, holdsSlot bool) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to redeliver or answer for.
		c.cfg.Logger.Error("message without JetStream metadata, terminating it", slog.String("subject", msg.Subject()), slog.Any("error", err))
		c.settle(msg, Outcome{Action: Decide(Facts{NoMetadata: true}), Err: err}, 0)
		return false, true
	}
	d := &Delivery{
		Subject:      msg.Subject(),
		Data:         msg.Data(),
		Header:       msg.Headers(),
		Stream:       meta.Stream,
		StreamSeq:    meta.Sequence.Stream,
		Stored:       meta.Timestamp,
		NumDelivered: meta.NumDelivered,
		MaxDeliver:   c.cfg.MaxDeliver,
	}
	stop := c.keepAlive(msg, meta.Sequence.Stream)
	mctx, cancel := context.WithCancelCause(ctx)
	k := &parker{ctx: mctx, p: p}
	hctx := wait.With(mctx, c.waiter(k, cancel))
	out := c.safeHandle(hctx, d)
	cancel(nil)
	stop()
	c.settle(msg, out, meta.Sequence.Stream)
	return k.retire.Load(), !k.unslotted.Load()
}

// safeHandle runs the handler; a panic becomes a later redelivery.
func (c *Consumer) safeHandle(ctx context.Context, d *Delivery) (out Outcome) {
	defer func() {
		if r := recover(); r != nil {
			c.cfg.Logger.Error("handler panicked", slog.Uint64("stream_seq", d.StreamSeq), slog.Any("panic", r))
			out = Outcome{Action: Decide(Facts{Panicked: true}), Delay: DefaultRetryDelay(d.NumDelivered), Err: fmt.Errorf("handler panicked: %v", r)}
		}
	}()
	return c.handler(ctx, d)
}

// settle carries out the decision on the message (see Decide).
func (c *Consumer) settle(msg jetstream.Msg, out Outcome, seq uint64) {
	var err error
	switch out.Action {
	case Ack:
		err = msg.Ack()
	case Terminate:
		if kind := out.Result.Kind(); kind != "" {
			err = msg.TermWithReason(string(kind))
		} else {
			err = msg.Term()
		}
	case HandBack:
		err = msg.Nak()
	default: // Retry, and anything unknown: redeliver later, never at once.
		err = msg.NakWithDelay(max(out.Delay, time.Second))
	}
	if err != nil {
		// Redelivered after the ack wait; the message ID dedupes the result.
		c.cfg.Logger.Warn("cannot settle request message", slog.Uint64("stream_seq", seq), slog.Any("error", err))
	}
}

// keepAlive sends progress acknowledgements while the message is in hand.
func (c *Consumer) keepAlive(msg jetstream.Msg, seq uint64) (stop func()) {
	every := max(c.cfg.AckWait/3, 100*time.Millisecond)
	var mu sync.Mutex
	var timer *time.Timer // nil once stopped
	mu.Lock()
	defer mu.Unlock()
	timer = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if timer == nil {
			return
		}
		if err := msg.InProgress(); err != nil {
			c.cfg.Logger.Warn("cannot extend the ack wait", slog.Uint64("stream_seq", seq), slog.Any("error", err))
		}
		timer.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		timer.Stop()
		timer = nil
	}
}
