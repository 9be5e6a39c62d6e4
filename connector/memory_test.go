package connector_test

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

// TestOversizedAnswersMemory: 16 lookups at once, each answered with
// 100 MiB, with and without a Content-Length, fail as bad_response while
// the heap stays within the body budget (8 MiB here, two answers of the
// 4 MiB cap) and a margin for garbage not yet collected, rather than
// growing by the 4 MiB cap and more per lookup.
func TestOversizedAnswersMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1.6 GiB over loopback")
	}
	const (
		lookups = 16
		size    = 100 << 20
		budget  = 8 << 20
		bound   = 32 << 20 // the budget, its garbage, and 16 small read buffers
	)
	forEachAPI(t, func(t *testing.T, api connector.API) {
		for _, noLength := range []bool{false, true} {
			name := map[bool]string{false: "with length", true: "without length"}[noLength]
			t.Run(name, func(t *testing.T) {
				srv := newServer(t, emulator.Config{AnyAlert: true})
				c := newClient(t, srv, api, connector.WithBackoff(time.Millisecond, time.Millisecond, time.Millisecond), connector.WithBodyBudget(budget))
				for range lookups {
					srv.Script(alertID, emulator.Answer{BodyBytes: size, NoLength: noLength})
				}
				checkOversized(t, lookups, bound, func() error {
					_, err := c.Domains(t.Context(), alertID)
					return err
				})
			})
		}
	})
}

// checkOversized runs lookup n times at once: each must fail as
// bad_response while the heap grows by at most bound, and nothing large
// is held once they are over.
func checkOversized(t *testing.T, n int, bound int64, lookup func() error) {
	t.Helper()
	runtime.GC()
	base := heapBytes()
	peak := watchHeap(t)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- lookup() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if e := asError(t, err); e.Kind != message.KindBadResponse {
			t.Errorf("Domains = %v, want bad_response", e)
		}
	}
	grew := int64(peak()) - int64(base)
	t.Logf("heap grew by %.1f MiB at its peak", float64(grew)/(1<<20))
	if grew > bound {
		t.Errorf("heap grew by %.1f MiB, want at most %d MiB", float64(grew)/(1<<20), bound>>20)
	}
	// Nothing large is held once the lookups are over.
	runtime.GC()
	if held := int64(heapBytes()) - int64(base); held > 4<<20 {
		t.Errorf("%.1f MiB still held after the lookups", float64(held)/(1<<20))
	}
}

// heapBytes is the heap in use by objects, live or not yet collected.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// watchHeap samples the heap every millisecond until the returned function
// is called, which returns the highest value seen.
func watchHeap(t *testing.T) (peak func() uint64) {
	t.Helper()
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var top uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			top = max(top, heapBytes())
			select {
			case <-stop:
				done <- top
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	var top uint64
	peak = func() uint64 {
		once.Do(func() { close(stop); top = <-done })
		return top
	}
	t.Cleanup(func() { peak() })
	return peak
}
