package connector

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alert-domains/alert-domains/internal/wait"
)

// Limit is one quota: at most Count calls in any Window.
type Limit struct {
	Count  int
	Window time.Duration
}

// String formats l the way ParseLimits reads it: "100/1m0s".
func (l Limit) String() string { return strconv.Itoa(l.Count) + "/" + l.Window.String() }

// MaxLimitCount is the largest Count a Limit may have.
const MaxLimitCount = 1_000_000

// ParseLimits reads quotas such as "100/1m,1500/1h"; "none" and "" are nil.
func ParseLimits(s string) ([]Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "none") {
		return nil, nil
	}
	var limits []Limit
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		count, window, ok := strings.Cut(part, "/")
		if !ok {
			return nil, fmt.Errorf("%q is not count/window (for example 100/1m)", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: the count must be a whole number above 0", part)
		}
		if n > MaxLimitCount {
			return nil, fmt.Errorf("%q: the count must not exceed %d", part, MaxLimitCount)
		}
		w, err := time.ParseDuration(strings.TrimSpace(window))
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("%q: the window must be a positive Go duration (for example 1m, 1h, 500ms)", part)
		}
		limits = append(limits, Limit{Count: n, Window: w})
	}
	return limits, nil
}

// Limiter enforces limits exactly with a sliding-window log each, serving
// waiters in arrival order; a nil *Limiter never waits. A slot taken with
// Acquire is logged at its release, which is later than Microsoft counts it.
type Limiter struct {
	limits   []Limit
	turn     chan struct{} // held by the one caller that takes the next slot
	mu       sync.Mutex
	epoch    time.Time
	logs     []callLog
	inFlight int           // calls acquired and not yet released
	released chan struct{} // closed, then replaced, on a release while waiting is set
	waiting  bool          // the caller with the turn waits for a release
	releaser func()        // l.release, made once
	cooldown time.Duration // offset from epoch before which no call starts
}

// callLog is a ring of one limit's last Count call times, oldest at next once full.
type callLog struct {
	window time.Duration
	times  []time.Duration
	next   int
	n      int
}

// NewLimiter returns a limiter for limits; it panics on one ParseLimits rejects.
func NewLimiter(limits []Limit) *Limiter {
	l := &Limiter{
		limits:   append([]Limit(nil), limits...),
		turn:     make(chan struct{}, 1),
		epoch:    time.Now(),
		logs:     make([]callLog, len(limits)),
		released: make(chan struct{}),
	}
	l.releaser = l.release
	for i, lim := range limits {
		if lim.Count <= 0 || lim.Count > MaxLimitCount || lim.Window <= 0 {
			panic(fmt.Sprintf("connector: invalid limit %d/%s", lim.Count, lim.Window))
		}
		l.logs[i] = callLog{window: lim.Window, times: make([]time.Duration, lim.Count)}
	}
	return l
}

// Limits returns the limits l enforces.
func (l *Limiter) Limits() []Limit {
	if l == nil {
		return nil
	}
	return append([]Limit(nil), l.limits...)
}

// Wait blocks until a call may start, records its start and reports the wait.
func (l *Limiter) Wait(ctx context.Context) (waited time.Duration, err error) {
	return l.take(ctx, false)
}

// Acquire blocks until a call may start; its slot is held until release.
func (l *Limiter) Acquire(ctx context.Context) (release func(), waited time.Duration, err error) {
	if l == nil || len(l.logs) == 0 {
		return func() {}, 0, nil
	}
	if waited, err = l.take(ctx, true); err != nil {
		return nil, waited, err
	}
	return l.releaser, waited, nil
}

// take waits for a slot: held until release, or logged now.
func (l *Limiter) take(ctx context.Context, hold bool) (waited time.Duration, err error) {
	if l == nil || len(l.logs) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	start := time.Now()
	parked := wait.NewLazy(ctx, true)
	defer parked.End()
	select {
	case l.turn <- struct{}{}:
	default:
		parked.Begin()
		select {
		case l.turn <- struct{}{}:
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		}
	}
	defer func() { <-l.turn }()

	var timer *time.Timer
	for {
		l.mu.Lock()
		now := time.Since(l.epoch)
		d, full := l.delay(now)
		if d <= 0 && !full {
			if hold {
				l.inFlight++
			} else {
				l.record(now)
			}
			l.waiting = false
			l.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return time.Since(start), nil
		}
		l.waiting = true
		released := l.released
		l.mu.Unlock()
		parked.Begin()
		var fired <-chan time.Time
		if !full {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			fired = timer.C
		}
		select {
		case <-fired:
		case <-released:
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			l.mu.Lock()
			l.waiting = false
			l.mu.Unlock()
			return time.Since(start), ctx.Err()
		}
	}
}

// release logs an acquired call as ended now and frees its slot.
func (l *Limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(time.Since(l.epoch))
	l.inFlight--
	if l.waiting {
		close(l.released)
		l.released = make(chan struct{})
		l.waiting = false
	}
}

// Allow takes a free slot now, or reports how long until one frees.
func (l *Limiter) Allow() (ok bool, retryIn time.Duration) {
	if l == nil || len(l.logs) == 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Since(l.epoch)
	if d, full := l.delay(now); full {
		return // every slot in flight: the window is a safe guess false, l.limits[0].Window
	} else if d > 0 {
		return false, d
	}
	l.record(now)
	return true, 0
}

// Used counts the calls in flight and those logged within the last window.
func (l *Limiter) Used(window time.Duration) int {
	if l == nil || len(l.logs) == 0 || window <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cover, longest := -1, 0
	for i := range l.logs {
		w := l.logs[i].window
		if w >= window && (cover < 0 || w < l.logs[cover].window) {
			cover = i
		}
		if w > l.logs[longest].window {
			longest = i
		}
	}
	if cover < 0 {
		cover = longest
	}
	return l.logs[cover].countSince(time.Since(l.epoch)-window) + l.inFlight
}

// delay is how long until every limit has a free slot; full: calls in
// flight take every slot of a limit. The caller holds l.mu.
func (l *Limiter) delay(now time.Duration) (d time.Duration, full bool) {
	d = l.cooldown - now
	for i := range l.logs {
		c := &l.logs[i]
		free := len(c.times) - l.inFlight // slots left for logged calls
		if free <= 0 {
			return 0, true
		}
		if c.n < free {
			continue
		}
		// The free-th most recent logged call must have left the window.
		k := c.next - free
		if k < 0 {
			k += len(c.times)
		}
		if w := c.times[k] + c.window - now; w > d {
			d = w
		}
	}
	return d, false
}

// Cooldown holds back every call until retryAfter has passed from now.
func (l *Limiter) Cooldown(retryAfter time.Duration) {
	if l == nil || len(l.logs) == 0 || retryAfter <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cooldown = max(l.cooldown, time.Since(l.epoch)+retryAfter)
}

// Seed logs calls made before l existed, so a restart starts with a full window.
func (l *Limiter) Seed(starts []time.Time) {
	if l == nil || len(l.logs) == 0 || len(starts) == 0 {
		return
	}
	now := time.Since(l.epoch)
	offs := make([]time.Duration, len(starts))
	for i, t := range starts {
		offs[i] = min(t.Sub(l.epoch), now)
	}
	slices.Sort(offs)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range offs {
		l.record(o)
	}
}

// record logs a call started at now in every limit. The caller holds l.mu.
func (l *Limiter) record(now time.Duration) {
	for i := range l.logs {
		c := &l.logs[i]
		c.times[c.next] = now
		c.next++
		if c.next == len(c.times) {
			c.next = 0
		}
		if c.n < len(c.times) {
			c.n++
		}
	}
}

func (c *callLog) countSince(since time.Duration) int {
	size := len(c.times)
	first := c.next - c.n
	if first < 0 {
		first += size
	}
	at := func(k int) time.Duration { return c.times[(first+k)%size] }
	lo, hi := 0, c.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if at(mid) > since {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return c.n - lo
}
