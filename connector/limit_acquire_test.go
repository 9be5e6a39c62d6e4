package connector

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/alert-domains/alert-domains/internal/wait"
)

// TestLimiterAcquireHoldsUntilRelease: a slot taken with Acquire is busy
// until its release and counts from the release, so that the next call in
// the window starts no sooner than a window after the previous one ended
// (when the server that enforces the quota has surely seen it).
func TestLimiterAcquireHoldsUntilRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter([]Limit{{2, time.Second}})
		begin := time.Now()
		first, _, err := l.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		second, _, err := l.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n := l.Used(time.Second); n != 2 {
			t.Errorf("Used = %d with two calls in flight, want 2", n)
		}
		if ok, retryIn := l.Allow(); ok || retryIn != time.Second {
			t.Errorf("Allow = %v, %s with every slot in flight, want false, the window", ok, retryIn)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			first()
			time.Sleep(2 * time.Second)
			second()
		}()
		// Both slots are held: only the release of the first frees one,
		// a window after it ended.
		third, _, err := l.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Since(begin); got != 1300*time.Millisecond {
			t.Errorf("third call started at %s, want 1.3s (a window after the first ended)", got)
		}
		third()
		// The second ends at 2.3s; the third ended at 1.3s: a slot frees at
		// 2.3s, when the third leaves the window.
		if _, err := call(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(begin); got != 2300*time.Millisecond {
			t.Errorf("fourth call started at %s, want 2.3s", got)
		}
	})
}

// TestLimiterParksOnlyWhenItWaits: a slot that is free is taken without
// giving up the worker; a wait for one gives it up (package wait) once, as
// a wait shutdown may abandon, and takes it back before the call starts.
func TestLimiterParksOnlyWhenItWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var began, ended int
		ctx := wait.With(t.Context(), func(abandonable bool) func() {
			if !abandonable {
				t.Error("a quota wait that shutdown may not abandon")
			}
			began++
			return func() { ended++ }
		})
		l := NewLimiter([]Limit{{1, time.Second}})
		release, _, err := l.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if began != 0 {
			t.Fatalf("a free slot gave up the worker %d times", began)
		}
		release()
		release, waited, err := l.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release()
		if waited < time.Second || began != 1 || ended != 1 {
			t.Fatalf("waited %v, gave up the worker %d times and took it back %d, want a wait of a window, once and once", waited, began, ended)
		}
	})
}
