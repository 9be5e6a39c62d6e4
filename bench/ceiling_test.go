package bench

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// The ceilings are the moving parts of the baseline alone, each with the
// baseline's workers: what the machine does at most with one of them and
// nothing else.

// BenchmarkCeilingHTTPS measures the domains call alone: GETs to the
// emulator over loopback TLS.
func BenchmarkCeilingHTTPS(b *testing.B) {
	api := newDefenderAPI(b, *benchAPI)
	ctx := b.Context()
	for b.Loop() {
		b.ReportMetric(parallel(b, *benchN, *benchWorkers, []int{os.Getpid()}, func(i int) error {
			_, err := api.domains(ctx, "bench_"+strconv.Itoa(i))
			return err
		}), "req/s")
	}
}

// BenchmarkCeilingPublish measures the result publish alone: synchronous
// JetStream publishes with a message ID to a stream on file storage.
func BenchmarkCeilingPublish(b *testing.B) {
	ns := testenv.StartNATS(b)
	js := ns.JetStream(b)
	ctx := b.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     baselineResultStream,
		Subjects: []string{baselineSuccessSubject},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"status":"success","alertId":"bench_0","domains":["x.example.com"]}`)
	run := 0
	for b.Loop() {
		run++
		prefix := strconv.Itoa(run) + "-"
		b.ReportMetric(parallel(b, *benchN, *benchWorkers, []int{os.Getpid(), ns.PID()}, func(i int) error {
			msg := &nats.Msg{Subject: baselineSuccessSubject, Data: body}
			_, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(prefix+strconv.Itoa(i)))
			return err
		}), "req/s")
	}
}

// parallel calls fn for 0 to n-1 from workers goroutines, and returns the
// calls per second. It reports the processor time of the processes pids per
// call.
func parallel(b *testing.B, n, workers int, pids []int, fn func(i int) error) float64 {
	b.Helper()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	next := make(chan int)
	var errs errorCount
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs.add(err)
					cancel()
				}
			}
		})
	}
	cpuBefore := cpuTime(b, pids)
	start := time.Now()
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(b, pids) - cpuBefore
	if count, first := errs.get(); count > 0 {
		b.Fatalf("%d errors, the first: %v", count, first)
	}
	b.ReportMetric(float64(cpu/time.Microsecond)/float64(n), "cpu-µs/req")
	return float64(n) / elapsed.Seconds()
}
