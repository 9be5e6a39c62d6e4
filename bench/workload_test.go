package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// target is a system under test, seen from outside: where it takes requests
// and where it stores their results. Results carry the request's alert ID in
// the Alert-Id header and "success" or "failure" in Result-Status, as the
// service's results do. Every run uses alert IDs never used before, so a
// result cache never answers them.
//
// For alert-domains serve (started with testenv.StartService on a
// testenv.StartNATS server, NATS_URL set to its URL, the emulator's URL and
// credentials in DEFENDER_API_URL and AZURE_*, SSL_CERT_FILE trusting it,
// DEFENDER_RATE_LIMITS=none, CONCURRENCY=64), the target is the contract's
// defaults: request subject defender.alerts.domains.requests, result stream
// DEFENDER_ALERT_DOMAIN_RESULTS with subjects
// defender.alerts.domains.success and defender.alerts.domains.failure, and
// pids holding the service's process besides this one and the nats-server.
type target struct {
	url            string   // NATS server URL
	requestSubject string   // requests are published here, the alert ID as the body
	resultStream   string   // the stream that stores results
	resultSubjects []string // the success and failure subjects
	pids           []int    // processes whose processor time the figures include
}

// stats are the figures of one or more workload runs.
type stats struct {
	requests  int
	elapsed   time.Duration   // first publish to last result, summed over runs
	latencies []time.Duration // publish to result stored, one per request
	failures  int             // results whose status is not success
	cpu       time.Duration   // processor time of the target's processes
	procCPU   []time.Duration // the same by process, in the order of target.pids
}

func (s *stats) add(o stats) {
	s.requests += o.requests
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
	s.failures += o.failures
	s.cpu += o.cpu
	if len(s.procCPU) < len(o.procCPU) {
		s.procCPU = append(s.procCPU, make([]time.Duration, len(o.procCPU)-len(s.procCPU))...)
	}
	for i, d := range o.procCPU {
		s.procCPU[i] += d
	}
}

func (s *stats) perSecond() float64 {
	return float64(s.requests) / s.elapsed.Seconds()
}

// percentile returns the latency below which p (0 to 1) of the requests lie.
func (s *stats) percentile(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(s.latencies)
	slices.Sort(sorted)
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// report adds the figures to the benchmark line.
func (s *stats) report(b *testing.B, prefix string) {
	b.ReportMetric(s.perSecond(), prefix+"req/s")
	b.ReportMetric(ms(s.percentile(0.50)), prefix+"p50-ms")
	b.ReportMetric(ms(s.percentile(0.99)), prefix+"p99-ms")
	b.ReportMetric(ms(s.percentile(1)), prefix+"max-ms")
	b.ReportMetric(s.cpuPerRequest(), prefix+"cpu-µs/req")
}

// cpuPerRequest is the processor time of the target's processes per
// request, in microseconds. Unlike throughput, it hardly depends on other
// load on the machine.
func (s *stats) cpuPerRequest() float64 {
	return float64(s.cpu/time.Microsecond) / float64(s.requests)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runWorkload publishes n requests to tg as fast as the server takes them,
// each with a Nats-Msg-Id, and waits for all their results. Its throughput
// is n over the time from the first publish to the last result stored.
func runWorkload(tb testing.TB, tg target, n int) stats {
	tb.Helper()
	return run(tb, tg, n, 0)
}

// runPaced publishes rate requests per second to tg for d, each at its
// scheduled time, and waits for all their results; its latencies are those
// of a steady load.
func runPaced(tb testing.TB, tg target, rate int, d time.Duration) stats {
	tb.Helper()
	return run(tb, tg, int(float64(rate)*d.Seconds()), time.Second/time.Duration(rate))
}

// run publishes n requests, one every interval (0: no pacing), and collects
// their results.
func run(tb testing.TB, tg target, n int, interval time.Duration) stats {
	tb.Helper()
	nc, err := nats.Connect(tg.url, nats.Name("bench-publisher"))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	var publishErrs errorCount
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(1024),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			publishErrs.add(err)
		}),
	)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}

	// Alert IDs are unique across runs, so that neither the request nor the
	// result stream drops one as a duplicate.
	prefix := "bench" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_"
	obs := observe(tb, js, tg, prefix, n)
	defer obs.stop()

	cpuBefore := cpuTimes(tb, tg.pids)
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for i := range n {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				timer.Reset(wait)
				<-timer.C
			}
		}
		id := prefix + strconv.Itoa(i)
		obs.sent[i].Store(time.Now().UnixNano())
		msg := &nats.Msg{Subject: tg.requestSubject, Data: []byte(id)}
		// The stall wait covers a server that falls behind while the target
		// works (the default, 200ms, fails the run instead).
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithStallWait(time.Minute)); err != nil {
			tb.Fatalf("publish request %d: %v", i, err)
		}
	}

	timeout := 2*time.Minute + time.Duration(n)*time.Millisecond
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(timeout):
		tb.Fatalf("requests not stored within %v", timeout)
	}
	if n, first := publishErrs.get(); n > 0 {
		tb.Fatalf("%d requests not stored, the first: %v", n, first)
	}
	select {
	case <-obs.done:
	case <-time.After(timeout):
		tb.Fatalf("%d of %d results within %v", obs.count(), n, timeout)
	}
	s := obs.stats(start)
	for i, after := range cpuTimes(tb, tg.pids) {
		s.procCPU = append(s.procCPU, after-cpuBefore[i])
		s.cpu += after - cpuBefore[i]
	}
	return s
}

// cpuTime returns the processor time used so far by the processes pids.
func cpuTime(tb testing.TB, pids []int) time.Duration {
	tb.Helper()
	var total time.Duration
	for _, cpu := range cpuTimes(tb, pids) {
		total += cpu
	}
	return total
}

// cpuTimes returns the processor time used so far by each of the processes
// pids.
func cpuTimes(tb testing.TB, pids []int) []time.Duration {
	tb.Helper()
	times := make([]time.Duration, len(pids))
	for i, pid := range pids {
		cpu, err := testenv.CPUTime(pid)
		if err != nil {
			tb.Fatalf("processor time: %v", err)
		}
		times[i] = cpu
	}
	return times
}

// procCPUPerRequest is cpuPerRequest by process, in the order of
// target.pids.
func (s *stats) procCPUPerRequest() []float64 {
	out := make([]float64, len(s.procCPU))
	for i, d := range s.procCPU {
		out[i] = float64(d/time.Microsecond) / float64(s.requests)
	}
	return out
}

// observer follows the result stream and records when each request's result
// is stored.
type observer struct {
	prefix string
	sent   []atomic.Int64 // publish time of request i, Unix nanoseconds
	cc     jetstream.ConsumeContext

	mu       sync.Mutex
	seen     []bool
	received int
	first    time.Time
	last     time.Time
	lat      []time.Duration
	failures int
	done     chan struct{} // closed when every request has a result
}

func observe(tb testing.TB, js jetstream.JetStream, tg target, prefix string, n int) *observer {
	tb.Helper()
	obs := &observer{
		prefix: prefix,
		sent:   make([]atomic.Int64, n),
		seen:   make([]bool, n),
		lat:    make([]time.Duration, 0, n),
		done:   make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, tg.resultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: tg.resultSubjects,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		tb.Fatalf("result consumer: %v", err)
	}
	if obs.cc, err = cons.Consume(obs.result); err != nil {
		tb.Fatalf("consume results: %v", err)
	}
	return obs
}

func (o *observer) result(msg jetstream.Msg) {
	now := time.Now()
	i, ok := o.index(msg.Headers().Get("Alert-Id"))
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[i] {
		return
	}
	o.seen[i] = true
	o.lat = append(o.lat, now.Sub(time.Unix(0, o.sent[i].Load())))
	if msg.Headers().Get("Result-Status") != "success" {
		o.failures++
	}
	if o.received == 0 {
		o.first = now
	}
	o.received++
	o.last = now
	if o.received == len(o.seen) {
		close(o.done)
	}
}

func (o *observer) index(alertID string) (int, bool) {
	rest, ok := strings.CutPrefix(alertID, o.prefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0 && i < len(o.seen)
}

func (o *observer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.received
}

func (o *observer) stats(start time.Time) stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return stats{
		requests:  o.received,
		elapsed:   o.last.Sub(start),
		latencies: slices.Clone(o.lat),
		failures:  o.failures,
	}
}

func (o *observer) stop() { o.cc.Stop() }

// String is the one-line summary logged by the benchmarks.
func (s *stats) String() string {
	return fmt.Sprintf("%d requests in %v: %.0f req/s, latency p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.0f µs processor time per request (by process %.0f), %d failures",
		s.requests, s.elapsed.Round(time.Millisecond), s.perSecond(),
		ms(s.percentile(0.5)), ms(s.percentile(0.99)), ms(s.percentile(1)), s.cpuPerRequest(), s.procCPUPerRequest(), s.failures)
}

// errorCount counts errors from many goroutines and keeps the first.
type errorCount struct {
	mu    sync.Mutex
	n     int
	first error
}

func (e *errorCount) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		e.first = err
	}
	e.n++
}

func (e *errorCount) get() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, e.first
}
