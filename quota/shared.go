package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/internal/wait"
)

// Timing of the shared quota.
const (
	requestTimeout = 2 * time.Second        // one publish or read of the state
	retryMin       = 2 * time.Millisecond   // wait after a refusal whose slot should already be free
	unreachableMin = 20 * time.Millisecond  // first wait while the state cannot be reached
	unreachableMax = time.Second            // longest such wait
	pollMax        = time.Second            // longest wait between tries while the window is full
	resyncEvery    = 2 * time.Second        // cooldown re-read and clock check, beside the watch
	cooldownPoll   = 250 * time.Millisecond // wake-up of a wait for a cooldown, at most
)

// Observer is told how the shared quota goes.
type Observer interface {
	QuotaAcquire(outcome string) // one attempt to take a slot: an Outcome
	QuotaCooldown(source string) // a cooldown: a 429 seen here, or one read back
}

// Outcomes and sources reported to an Observer.
const (
	OutcomeAccepted    = "accepted"
	OutcomeRefused     = "refused"
	OutcomeUnreachable = "unreachable"
	SourceLocal        = "local"
	SourceShared       = "shared"
)

// Shared is the quota of one app registration shared by every replica
// through JetStream. It fails closed: while the state is unreachable, it waits.
type Shared struct {
	layout Layout
	limits []connector.Limit
	reg    Registration
	hold   time.Duration // longest call: a slot's message outlives it by the window
	logger *slog.Logger
	obs    Observer

	attached chan struct{}   // closed once js is set
	stopped  context.Context // ended when Run returns
	stop     context.CancelFunc
	js       jetstream.JetStream
	streams  sync.Map // name → jetstream.Stream, looked up once

	turn        chan struct{} // its token is held by the one local caller that tries the next slot
	unreachable atomic.Bool

	mu          sync.Mutex
	offset      time.Duration // server clock minus local clock
	cooldown    time.Time     // local time before which no call starts
	changed     chan struct{} // closed and replaced when cooldown grows
	toPublish   time.Time     // server time of a cooldown not yet written
	publishKick chan struct{}
}

// SharedOption configures a Shared.
type SharedOption func(*Shared) error

// WithLogger logs when the quota state becomes unreachable and reachable again.
func WithLogger(l *slog.Logger) SharedOption {
	return func(s *Shared) error {
		if l == nil {
			return errors.New("quota: nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithHold sets the longest a call takes, which a dead process's slots outlive.
func WithHold(d time.Duration) SharedOption {
	return func(s *Shared) error {
		if d <= 0 {
			return errors.New("quota: hold must be more than 0")
		}
		s.hold = d
		return nil
	}
}

// WithObserver reports acquisitions and cooldowns to o.
func WithObserver(o Observer) SharedOption {
	return func(s *Shared) error { s.obs = o; return nil }
}

// NewShared returns the shared quota of reg under limits, in layout's streams.
func NewShared(layout Layout, reg Registration, limits []connector.Limit, opts ...SharedOption) (*Shared, error) {
	if len(limits) == 0 {
		return nil, errors.New("quota: a shared quota needs at least one limit")
	}
	s := &Shared{
		layout:      layout,
		limits:      distinct(limits),
		reg:         reg,
		logger:      slog.New(slog.DiscardHandler),
		attached:    make(chan struct{}),
		turn:        make(chan struct{}, 1),
		changed:     make(chan struct{}),
		publishKick: make(chan struct{}, 1),
		hold:        connector.DefaultTimeout,
	}
	s.turn <- struct{}{}
	s.stopped, s.stop = context.WithCancel(context.Background())
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Limits returns the limits s enforces.
func (s *Shared) Limits() []connector.Limit { return append([]connector.Limit(nil), s.limits...) }

// Registration returns the app registration s counts.
func (s *Shared) Registration() Registration { return s.reg }

// Run attaches s to js and keeps its cooldown and clock offset current until ctx ends.
func (s *Shared) Run(ctx context.Context, js jetstream.JetStream) error {
	s.js = js
	close(s.attached)
	defer s.stop()
	s.syncClock(ctx)

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.watchCooldown(ctx) })
	wg.Go(func() { s.publishCooldowns(ctx) })
	for timing.Sleep(ctx, resyncEvery, nil) {
		s.syncClock(ctx)
		s.readCooldown(ctx)
	}
	return nil
}

// Acquire blocks until no cooldown holds and every limit's stream took a
// message for the registration. It returns only ctx's error.
func (s *Shared) Acquire(ctx context.Context) (release func(), waited time.Duration, err error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	parked := wait.NewLazy(ctx, true)
	defer parked.End()
	if !await(ctx, parked, s.attached) || !await(ctx, parked, s.turn) {
		return nil, time.Since(start), ctx.Err()
	}
	defer func() { s.turn <- struct{}{} }()

	backoff := unreachableMin
	for {
		s.mu.Lock()
		wait, changed := time.Until(s.cooldown), s.changed // changed is closed when the cooldown grows
		s.mu.Unlock()
		if wait > 0 {
			wait = min(wait, cooldownPoll)
		} else {
			// Take the worker back before a grant: the slot expires MaxAge after it.
			parked.End()
			slots, next, err := s.try(ctx)
			if err != nil && ctx.Err() != nil {
				return nil, time.Since(start), ctx.Err()
			}
			s.setReachable(err == nil, err)
			switch {
			case slots != nil:
				return s.releaser(slots), time.Since(start), nil
			case err == nil:
				wait, backoff = next, unreachableMin
			default:
				wait, backoff = backoff, min(2*backoff, unreachableMax)
			}
		}
		if wait <= 0 {
			continue
		}
		parked.Begin()
		if !timing.Sleep(ctx, wait, changed) {
			return nil, time.Since(start), ctx.Err()
		}
	}
}

// await receives from ch, parked if it has to wait; false when ctx ends first.
func await(ctx context.Context, parked *wait.Lazy, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
	}
	parked.Begin()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// slot is the message that holds one slot of one limit.
type slot struct {
	stream string
	seq    uint64
	window time.Duration
}

// releaser frees slots a window after the call ended, when Defender counted it.
func (s *Shared) releaser(slots []slot) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, sl := range slots {
				time.AfterFunc(sl.window, func() { s.free(sl) })
			}
		})
	}
}

// free deletes a slot's message, retrying until it would have expired anyway.
func (s *Shared) free(sl slot) {
	giveUp := time.Now().Add(MaxAge(sl.window, s.hold))
	backoff := unreachableMin
	for {
		if s.delete(context.Background(), sl) || !time.Now().Add(backoff).Before(giveUp) || !timing.Sleep(s.stopped, backoff, nil) {
			return
		}
		backoff = min(2*backoff, unreachableMax)
	}
}

// delete deletes a slot's message within requestTimeout; true when it is gone.
func (s *Shared) delete(ctx context.Context, sl slot) bool {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := s.stream(ctx, sl.stream)
	if err != nil {
		return false
	}
	err = st.DeleteMsg(ctx, sl.seq)
	return err == nil || errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful)
}

// try publishes one message per limit: slots, when every stream took it.
func (s *Shared) try(ctx context.Context) (slots []slot, wait time.Duration, err error) {
	stored := make([]slot, 0, len(s.limits))
	for _, l := range s.limits {
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		ack, perr := s.js.PublishMsg(pctx, &nats.Msg{Subject: s.layout.Subject(l, s.reg.Key())})
		cancel()
		if perr == nil {
			stored = append(stored, slot{stream: ack.Stream, seq: ack.Sequence, window: l.Window})
			continue
		}
		s.rollback(ctx, stored)
		if !refused(perr) {
			s.observe(OutcomeUnreachable)
			return nil, 0, fmt.Errorf("quota stream %s: %w", s.layout.Stream(l), perr)
		}
		s.observe(OutcomeRefused)
		wait, err := s.untilFree(ctx, l)
		if err != nil {
			s.observe(OutcomeUnreachable)
			return nil, 0, err
		}
		return nil, wait, nil
	}
	s.observe(OutcomeAccepted)
	return stored, 0, nil
}

// refused reports a full subject, which the server says only in 10077's text.
func refused(err error) bool {
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	return ok && apiErr.ErrorCode == 10077 && strings.Contains(apiErr.Description, "maximum messages per subject")
}

// untilFree is the wait until the oldest slot expires, at most a hundredth of the window
// (within retryMin and pollMax); it deletes an expired one, as the server does only every 250ms.
func (s *Shared) untilFree(ctx context.Context, l connector.Limit) (time.Duration, error) {
	name := s.layout.Stream(l)
	st, err := s.stream(ctx, name)
	if err != nil {
		return 0, err
	}
	gctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	msg, err := st.GetMsg(gctx, 1, jetstream.WithGetMsgSubject(s.layout.Subject(l, s.reg.Key())))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil // it expired meanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("quota stream %s: %w", name, err)
	}
	s.mu.Lock()
	serverNow := time.Now().Add(s.offset)
	s.mu.Unlock()
	left := msg.Time.Add(MaxAge(l.Window, s.hold)).Sub(serverNow)
	if left > 0 {
		return min(max(left, retryMin), max(l.Window/100, retryMin), pollMax), nil
	}
	if !s.delete(ctx, slot{stream: name, seq: msg.Sequence}) {
		return 0, fmt.Errorf("quota stream %s: cannot delete an expired slot", name)
	}
	return 0, nil
}

// rollback deletes, best effort, the messages of a call that does not start.
func (s *Shared) rollback(ctx context.Context, stored []slot) {
	for _, sl := range stored {
		s.delete(ctx, sl) // best effort: the slot frees at expiry anyway
	}
}

// stream returns a handle on the named stream, looked up once.
func (s *Shared) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if st, ok := s.streams.Load(name); ok {
		return st.(jetstream.Stream), nil
	}
	lctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := s.js.Stream(lctx, name)
	if err != nil {
		return nil, fmt.Errorf("quota stream %s: %w", name, err)
	}
	s.streams.Store(name, st)
	return st, nil
}

// syncClock measures the server's clock against the local one by a stream info.
func (s *Shared) syncClock(ctx context.Context) {
	st, err := s.stream(ctx, s.layout.Stream(s.limits[0]))
	if err != nil {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	before := time.Now()
	info, err := st.Info(ictx)
	after := time.Now()
	if err != nil || info.TimeStamp.IsZero() {
		return
	}
	mid := before.Add(after.Sub(before) / 2)
	s.mu.Lock()
	s.offset = info.TimeStamp.Sub(mid)
	s.mu.Unlock()
}

func (s *Shared) observe(outcome string) {
	if s.obs != nil {
		s.obs.QuotaAcquire(outcome)
	}
}

func (s *Shared) setReachable(ok bool, err error) {
	was := !s.unreachable.Swap(!ok)
	switch {
	case was && !ok:
		s.logger.Warn("shared quota unreachable: no Defender call starts until it is back", slog.Any("error", err))
	case !was && ok:
		s.logger.Info("shared quota reachable again")
	}
}

// Cooldown pauses the registration's calls on every replica for retryAfter.
func (s *Shared) Cooldown(retryAfter time.Duration) {
	if retryAfter <= 0 {
		return
	}
	s.mu.Lock()
	until := time.Now().Add(retryAfter + s.offset) // server time
	if until.After(s.toPublish) {
		s.toPublish = until
	}
	s.mu.Unlock()
	s.extend(until, SourceLocal)
	select {
	case s.publishKick <- struct{}{}:
	default:
	}
}

// extend moves the cooldown to until, a server time, if later; source says whose it is.
func (s *Shared) extend(until time.Time, source string) {
	s.mu.Lock()
	until = until.Add(-s.offset)
	grew := until.After(s.cooldown)
	if grew {
		s.cooldown = until
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	if grew && s.obs != nil {
		s.obs.QuotaCooldown(source)
	}
}

type cooldownValue struct {
	Until time.Time `json:"until"` // server time
}

func (s *Shared) applyCooldown(data []byte) {
	var v cooldownValue
	if json.Unmarshal(data, &v) == nil && !v.Until.IsZero() {
		s.extend(v.Until, SourceShared)
	}
}

// watchCooldown follows the registration's key, restarting a failed watch.
func (s *Shared) watchCooldown(ctx context.Context) {
	for ctx.Err() == nil {
		if kv, err := s.bucket(ctx); err == nil {
			if w, err := kv.Watch(ctx, s.reg.Key()); err == nil {
				s.followCooldown(ctx, w)
				_ = w.Stop()
			}
		}
		if !timing.Sleep(ctx, resyncEvery, nil) {
			return
		}
	}
}

// followCooldown applies the cooldowns w sees until the watch or ctx ends
// (ctx too: nats.go may leave Updates open when ctx ends during Watch).
func (s *Shared) followCooldown(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				s.applyCooldown(e.Value())
			}
		}
	}
}

// readCooldown reads the key once, in case the watch missed an update.
func (s *Shared) readCooldown(ctx context.Context) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return
	}
	gctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if e, err := kv.Get(gctx, s.reg.Key()); err == nil {
		s.applyCooldown(e.Value())
	}
}

func (s *Shared) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	bctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return s.js.KeyValue(bctx, CooldownBucket(s.layout.consumer))
}

// publishCooldowns writes each cooldown seen here to the bucket, retrying.
func (s *Shared) publishCooldowns(ctx context.Context) {
	backoff := unreachableMin
	for {
		s.mu.Lock()
		until := s.toPublish
		s.mu.Unlock()
		if until.IsZero() {
			select {
			case <-ctx.Done():
				return
			case <-s.publishKick:
				continue
			}
		}
		if err := s.writeCooldown(ctx, until); err != nil {
			if !timing.Sleep(ctx, backoff, nil) {
				return
			}
			backoff = min(2*backoff, unreachableMax)
			continue
		}
		backoff = unreachableMin
		s.mu.Lock()
		if s.toPublish.Equal(until) {
			s.toPublish = time.Time{}
		}
		s.mu.Unlock()
	}
}

// writeCooldown stores until unless a later end is there (compare-and-set).
func (s *Shared) writeCooldown(ctx context.Context, until time.Time) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	val, err := json.Marshal(cooldownValue{Until: until.UTC()})
	if err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, requestTimeout)
		e, err := kv.Get(wctx, s.reg.Key())
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = kv.Create(wctx, s.reg.Key(), val)
		case err != nil:
		default:
			var have cooldownValue
			if json.Unmarshal(e.Value(), &have) == nil && !have.Until.Before(until) {
				cancel()
				return nil
			}
			_, err = kv.Update(wctx, s.reg.Key(), val, e.Revision())
		}
		cancel()
		apiErr, ok := errors.AsType[*jetstream.APIError](err)
		if !errors.Is(err, jetstream.ErrKeyExists) && (!ok || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence) {
			return err // nil, or not another replica's write first (compare again)
		}
	}
}

// Used counts the registration's slots in window's stream; -1 when unknown.
func (s *Shared) Used(window time.Duration) int {
	i := slices.IndexFunc(s.limits, func(l connector.Limit) bool { return l.Window == window })
	if i < 0 {
		return -1
	}
	select {
	case <-s.attached:
	default:
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	st, err := s.stream(ctx, s.layout.Stream(s.limits[i]))
	if err != nil {
		return -1
	}
	subj := s.layout.Subject(s.limits[i], s.reg.Key())
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return -1
	}
	return int(info.State.Subjects[subj])
}
