package connector

import (
	"context"
	"fmt"
	"slices"
	"sort"
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
		if err != nil || n <= 0 || n > MaxLimitCount {
			return nil, fmt.Errorf("%q: the count must be a whole number from 1 to %d", part, MaxLimitCount)
		}
		w, err := time.ParseDuration(strings.TrimSpace(window))
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("%q: the window must be a positive Go duration (for example 1m, 1h, 500ms)", part)
		}
		limits = append(limits, Limit{Count: n, Window: w})
	}
	return limits, nil
}

// Limiter enforces limits exactly with one sliding-window log of the
// calls, serving waiters in arrival order; a nil *Limiter never waits. A slot
// is logged at its release, which is later than Microsoft counts it.
type Limiter struct {
	limits   []Limit
	turn     chan struct{} // held by the one caller that takes the next slot
	mu       sync.Mutex
	epoch    time.Time
	log      []time.Duration // the last calls, oldest first, as many as the largest Count
	size     int             // the largest Count
	inFlight int             // calls acquired and not yet released
	released chan struct{}   // signalled on a release, for the caller with the turn
	releaser func()          // l.release, made once
	cooldown time.Duration   // offset from epoch before which no call starts
}

// NewLimiter returns a limiter for limits; it panics on one ParseLimits rejects.
func NewLimiter(limits []Limit) *Limiter {
	size := 0
	for _, lim := range limits {
		if lim.Count <= 0 || lim.Count > MaxLimitCount || lim.Window <= 0 {
			panic(fmt.Sprintf("connector: invalid limit %d/%s", lim.Count, lim.Window))
		}
		size = max(size, lim.Count)
	}
	l := &Limiter{
		limits:   slices.Clone(limits),
		turn:     make(chan struct{}, 1),
		epoch:    time.Now(),
		size:     size,
		released: make(chan struct{}, 1),
	}
	l.releaser = l.release
	return l
}

// Limits returns the limits l enforces.
func (l *Limiter) Limits() []Limit {
	if l == nil {
		return nil
	}
	return slices.Clone(l.limits)
}

// Acquire blocks until a call may start; its slot is held until release.
func (l *Limiter) Acquire(ctx context.Context) (release func(), waited time.Duration, err error) {
	if l == nil || len(l.limits) == 0 {
		return func() {}, 0, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
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
			return nil, time.Since(start), ctx.Err()
		}
	}
	defer func() { <-l.turn }()
	for {
		l.mu.Lock()
		d, full := l.delay(time.Since(l.epoch))
		if d <= 0 && !full {
			l.inFlight++
			l.mu.Unlock()
			return l.releaser, time.Since(start), nil
		}
		l.mu.Unlock()
		parked.Begin()
		var fired <-chan time.Time
		if !full {
			fired = time.After(d)
		}
		select {
		case <-fired:
		case <-l.released:
		case <-ctx.Done():
			return nil, time.Since(start), ctx.Err()
		}
	}
}

// release logs an acquired call as ended now and frees its slot.
func (l *Limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(time.Since(l.epoch))
	l.inFlight--
	select {
	case l.released <- struct{}{}:
	default: // a signal is pending already
	}
}

// Allow takes a free slot now, or reports how long until one frees.
func (l *Limiter) Allow() (ok bool, retryIn time.Duration) {
	if l == nil || len(l.limits) == 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Since(l.epoch)
	switch d, full := l.delay(now); {
	case full:
		return false, l.limits[0].Window // every slot in flight: the window is a safe guess
	case d > 0:
		return false, d
	}
	l.record(now)
	return true, 0
}

// Used counts the calls in flight and those logged within the last window.
func (l *Limiter) Used(window time.Duration) int {
	if l == nil || len(l.limits) == 0 || window <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	since := time.Since(l.epoch) - window
	return len(l.log) - sort.Search(len(l.log), func(k int) bool { return l.log[k] > since }) + l.inFlight
}

// delay is how long until every limit has a free slot; full: calls in
// flight take every slot of a limit. The caller holds l.mu.
func (l *Limiter) delay(now time.Duration) (d time.Duration, full bool) {
	d = l.cooldown - now
	for _, lim := range l.limits {
		free := lim.Count - l.inFlight // slots left for logged calls
		if free <= 0 {
			return 0, true
		}
		if len(l.log) >= free {
			// The free-th most recent logged call must have left the window.
			d = max(d, l.log[len(l.log)-free]+lim.Window-now)
		}
	}
	return d, false
}

// Cooldown holds back every call until retryAfter has passed from now.
func (l *Limiter) Cooldown(retryAfter time.Duration) {
	if l == nil || len(l.limits) == 0 || retryAfter <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cooldown = max(l.cooldown, time.Since(l.epoch)+retryAfter)
}

// Seed logs calls made before l existed, so a restart starts with a full window.
func (l *Limiter) Seed(starts []time.Time) {
	if l == nil || len(l.limits) == 0 || len(starts) == 0 {
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
	l.record(offs...)
}

// record logs calls ended at the offsets given, keeping the last size. The caller holds l.mu.
func (l *Limiter) record(ends ...time.Duration) {
	l.log = append(l.log, ends...)
	l.log = l.log[max(len(l.log)-l.size, 0):]
}
