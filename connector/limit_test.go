package connector

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseLimits(t *testing.T) {
	tests := []struct {
		in      string
		want    []Limit
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "none", want: nil},
		{in: "NONE", want: nil},
		{in: "100/1m,1500/1h", want: []Limit{{100, time.Minute}, {1500, time.Hour}}},
		{in: " 10/2s , 5/500ms ", want: []Limit{{10, 2 * time.Second}, {5, 500 * time.Millisecond}}},
		{in: "100", wantErr: true},
		{in: "0/1m", wantErr: true},
		{in: "-1/1m", wantErr: true},
		{in: "x/1m", wantErr: true},
		{in: "1.5/1m", wantErr: true},
		{in: "100/", wantErr: true},
		{in: "100/1", wantErr: true},
		{in: "100/0s", wantErr: true},
		{in: "100/-1m", wantErr: true},
		{in: "100/1m,", wantErr: true},
		{in: "100/1m,,5/1s", wantErr: true},
		{in: "2000000/1h", wantErr: true},
		{in: "100/1m;1500/1h", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseLimits(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseLimits(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLimits(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCloudByName(t *testing.T) {
	tests := []struct {
		name, authority, graph, mde string
	}{
		{"public", "https://login.microsoftonline.com/", "https://graph.microsoft.com", "https://api.securitycenter.microsoft.com"},
		{"gcc", "https://login.microsoftonline.com/", "https://graph.microsoft.com", "https://api-gcc.securitycenter.microsoft.us"},
		{"gcc-high", "https://login.microsoftonline.us/", "https://graph.microsoft.us", "https://api-gov.securitycenter.microsoft.us"},
		{"dod", "https://login.microsoftonline.us/", "https://dod-graph.microsoft.us", "https://api-gov.securitycenter.microsoft.us"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := CloudByName(tt.name)
			if err != nil || c.Name != tt.name || c.AuthorityHost != tt.authority {
				t.Fatalf("CloudByName(%q) = %+v, %v", tt.name, c, err)
			}
			for api, host := range map[API]string{Graph: tt.graph, MDE: tt.mde} {
				if got := c.APIURL(api); got != host {
					t.Errorf("APIURL(%s) = %q, want %q", api, got, host)
				}
				if got := c.Scope(api); got != host+"/.default" {
					t.Errorf("Scope(%s) = %q, want %q", api, got, host+"/.default")
				}
			}
		})
	}
	for _, name := range []string{"", "Public", "china", "usgov"} {
		if _, err := CloudByName(name); !errors.Is(err, ErrConfig) {
			t.Errorf("CloudByName(%q) error = %v, want ErrConfig", name, err)
		}
	}
}

// call takes a slot and ends the call at once.
func call(ctx context.Context, l *Limiter) (time.Duration, error) {
	release, waited, err := l.Acquire(ctx)
	if err == nil {
		release()
	}
	return waited, err
}

// checkWindows fails when more than l.Count of starts fall in any interval
// of length l.Window (starts sorted).
func checkWindows(t *testing.T, starts []time.Time, l Limit) {
	t.Helper()
	for i := 0; i+l.Count < len(starts); i++ {
		if gap := starts[i+l.Count].Sub(starts[i]); gap < l.Window {
			t.Fatalf("limit %s broken: calls %d and %d started %s apart", l, i, i+l.Count, gap)
		}
	}
}

func TestLimiterSlidingWindows(t *testing.T) {
	tests := []struct {
		name    string
		limits  []Limit
		callers int
		each    int
		// last is when the last call starts, exactly: the limiter waits no
		// longer than it must.
		last time.Duration
	}{
		{name: "10/200ms", limits: []Limit{{10, 200 * time.Millisecond}}, callers: 50, each: 2, last: 9 * 200 * time.Millisecond},
		{name: "5/100ms and 12/1s", limits: []Limit{{5, 100 * time.Millisecond}, {12, time.Second}}, callers: 50, each: 1,
			// 12 a second, 5 per 100ms: calls 0-4 at 0, 5-9 at 100ms, 10-11 at
			// 200ms, 12-16 at 1s, ..., 48-49 at 4s.
			last: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(tt.limits)
				begin := time.Now()
				var (
					mu     sync.Mutex
					starts []time.Time
					wg     sync.WaitGroup
				)
				errs := make(chan error, tt.callers*tt.each)
				for range tt.callers {
					wg.Go(func() {
						for range tt.each {
							if _, err := call(t.Context(), l); err != nil {
								errs <- err
								return
							}
							now := time.Now()
							mu.Lock()
							starts = append(starts, now)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
				if len(starts) != tt.callers*tt.each {
					t.Fatalf("%d calls started, want %d", len(starts), tt.callers*tt.each)
				}
				for _, lim := range tt.limits {
					checkWindows(t, starts, lim)
				}
				if got := starts[len(starts)-1].Sub(begin); got != tt.last {
					t.Errorf("last call started at %s, want %s", got, tt.last)
				}
			})
		})
	}
}

func TestLimiterWaitStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter([]Limit{{1, time.Hour}})
		if _, err := call(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		queued, queuedCancel := context.WithCancel(t.Context())
		done := make(chan error, 2)
		go func() { _, err := call(ctx, l); done <- err }()
		go func() { _, err := call(queued, l); done <- err }() // queued behind the first waiter
		time.Sleep(time.Second)                                // fake time: both are waiting
		synctest.Wait()
		start := time.Now()
		cancel()
		queuedCancel()
		for range 2 {
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("call = %v, want context.Canceled", err)
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("call returned %s after the cancel, want at once", d)
		}
		if n := l.Used(time.Hour); n != 1 {
			t.Errorf("Used = %d, want 1: cancelled waits must not take a slot", n)
		}
	})
}

func TestLimiterUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter([]Limit{{100, time.Minute}, {1500, time.Hour}})
		for range 30 {
			if _, err := call(t.Context(), l); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Second)
		}
		// 30 calls, one every 10s: the last started 10s ago.
		checks := []struct {
			window time.Duration
			want   int
		}{
			{5 * time.Second, 0},
			{11 * time.Second, 1},
			{time.Minute, 5},
			{30 * time.Minute, 30},
			{time.Hour, 30},
			{24 * time.Hour, 30},
		}
		for _, c := range checks {
			if got := l.Used(c.window); got != c.want {
				t.Errorf("Used(%s) = %d, want %d", c.window, got, c.want)
			}
		}
		if got := l.Limits(); !reflect.DeepEqual(got, []Limit{{100, time.Minute}, {1500, time.Hour}}) {
			t.Errorf("Limits = %v", got)
		}
	})
}

func TestLimiterWithoutLimitsNeverWaits(t *testing.T) {
	var nilLimiter *Limiter
	for _, l := range []*Limiter{nilLimiter, NewLimiter(nil)} {
		for range 1000 {
			if d, err := call(t.Context(), l); d != 0 || err != nil {
				t.Fatalf("call = %s, %v", d, err)
			}
		}
		if ok, _ := l.Allow(); !ok {
			t.Fatal("Allow = false")
		}
		if l.Used(time.Minute) != 0 || len(l.Limits()) != 0 {
			t.Fatal("a limiter without limits reports use")
		}
	}
}

func TestLimiterAllow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter([]Limit{{2, time.Second}})
		for range 2 {
			if ok, _ := l.Allow(); !ok {
				t.Fatal("Allow refused a free slot")
			}
		}
		time.Sleep(300 * time.Millisecond)
		ok, retryIn := l.Allow()
		if ok || retryIn != 700*time.Millisecond {
			t.Fatalf("Allow = %v, %s, want false, 700ms", ok, retryIn)
		}
		time.Sleep(retryIn)
		if ok, _ := l.Allow(); !ok {
			t.Fatal("Allow refused after the window passed")
		}
	})
}

func TestLimiterFastPathDoesNotAllocate(t *testing.T) {
	l := NewLimiter([]Limit{{MaxLimitCount, time.Hour}})
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = call(ctx, l) }); n != 0 {
		t.Errorf("Acquire allocates %v times when it need not wait", n)
	}
}

func TestLimiterCooldownHoldsBackEveryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter([]Limit{{Count: 100, Window: time.Minute}})
		start := time.Now()
		l.Cooldown(3 * time.Second)
		l.Cooldown(time.Second) // shorter: changes nothing
		waited, err := call(t.Context(), l)
		if err != nil {
			t.Fatal(err)
		}
		if waited != 3*time.Second || time.Since(start) != 3*time.Second {
			t.Errorf("waited %v, want the 3s cooldown", waited)
		}
		if ok, _ := l.Allow(); !ok {
			t.Error("no slot after the cooldown")
		}
	})
}

func TestLimiterSeedCountsEarlierCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter([]Limit{{Count: 3, Window: time.Minute}})
		now := time.Now()
		// Three calls 40s, 20s and 10s ago, given out of order.
		l.Seed([]time.Time{now.Add(-20 * time.Second), now.Add(-40 * time.Second), now.Add(-10 * time.Second)})
		if used := l.Used(time.Minute); used != 3 {
			t.Fatalf("Used = %d after seeding 3 calls, want 3", used)
		}
		waited, err := call(t.Context(), l)
		if err != nil {
			t.Fatal(err)
		}
		// The oldest seeded call leaves the window 20s from now.
		if waited != 20*time.Second {
			t.Errorf("waited %v, want 20s", waited)
		}
	})
}
