package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// ClusterCommand runs BenchmarkCluster; BENCHMARKS.md gives it.
const ClusterCommand = "go test ./bench -run '^$' -bench '^BenchmarkCluster$' -benchtime 1x -timeout 30m"

// clusterNodes is the size of the JetStream cluster, and the replica count
// of every stream on it.
const clusterNodes = 3

// clusterRun is the figures of one run of measureCluster.
type clusterRun struct {
	baseline *system
	products []*system // cache on (the default), cache off, then BENCH_COMPARE_BINARY's
	load     [2]string // /proc/loadavg before and after
}

// BenchmarkCluster measures, on one three-node JetStream cluster of
// nats-server processes (routes on loopback) with every stream on three
// replicas, the baseline loop and alert-domains serve (STREAM_REPLICAS=3,
// DEFENDER_RATE_LIMITS=none), with the result cache on (the default) and
// off: throughput rounds in turns, the medians of the rates and of the
// ratios to the baseline of the same round. Every client connects to the
// first node, and the rounds run in each layout of clusterLayouts (every
// stream and consumer led by that node, then by another), so that each
// system meets the same placement.
func BenchmarkCluster(b *testing.B) {
	for b.Loop() {
		r := measureCluster(b, *benchN, *benchRounds, *benchWorkers)
		head, off := r.products[0], r.products[1]
		b.ReportMetric(median(r.baseline.rates), "baseline-req/s")
		b.ReportMetric(median(head.rates), "serve-req/s")
		b.ReportMetric(median(head.ratios), "ratio")
		b.ReportMetric(median(off.rates), "nocache-req/s")
		b.ReportMetric(median(off.ratios), "nocache-ratio")
		b.ReportMetric(median(r.baseline.cpu), "baseline-cpu-µs/req")
		b.ReportMetric(median(head.cpu), "serve-cpu-µs/req")
		b.Logf("R3 cluster, %d requests × %d rounds in turns, medians: baseline %.0f req/s (%.0f µs/req); serve, cache on %.0f req/s (%.0f µs/req), ratio %.2f (rounds %s); serve, cache off %.0f req/s (%.0f µs/req), ratio %.2f (rounds %s); load average before %s, after %s",
			*benchN, *benchRounds,
			median(r.baseline.rates), median(r.baseline.cpu),
			median(head.rates), median(head.cpu), median(head.ratios), roundList(head.ratios),
			median(off.rates), median(off.cpu), median(off.ratios), roundList(off.ratios),
			r.load[0], r.load[1])
		for i, l := range clusterLayouts {
			b.ReportMetric(median(head.byLayout[l.name]), fmt.Sprintf("ratio-layout%d", i+1))
			b.ReportMetric(median(off.byLayout[l.name]), fmt.Sprintf("nocache-ratio-layout%d", i+1))
		}
		for _, s := range r.products {
			for _, l := range clusterLayouts {
				b.Logf("%s, %s: ratio %.2f (rounds %s)", s.name, l.name, median(s.byLayout[l.name]), roundList(s.byLayout[l.name]))
			}
		}
		for _, s := range r.products[2:] {
			b.Logf("%s: %.0f req/s (%.0f µs/req), ratio %.2f (rounds %s)", s.name, median(s.rates), median(s.cpu), median(s.ratios), roundList(s.ratios))
		}
	}
}

// TestCluster runs a short version of BenchmarkCluster, so that the
// benchmark keeps working: every request of both systems answered with a
// success on a cluster whose every stream has three current replicas.
func TestCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and starts alert-domains and a three-node nats-server cluster")
	}
	r := measureCluster(t, 300, 1, 8)
	for _, s := range append([]*system{r.baseline}, r.products...) {
		if len(s.rates) != len(clusterLayouts) || slices.Min(s.rates) <= 0 {
			t.Errorf("%s: rates %v, want one positive per layout", s.name, s.rates)
		}
	}
	for _, s := range r.products {
		for _, l := range clusterLayouts {
			if got := s.byLayout[l.name]; len(got) != 1 || got[0] <= 0 {
				t.Errorf("%s, %s: ratios %v, want one positive", s.name, l.name, got)
			}
		}
	}
}

// The cache-off service's streams, subjects and consumer, beside those of
// the cache-on service (the contract's defaults) on the same cluster.
var noCacheNames = []string{
	"REQUEST_STREAM=BENCH_NC_REQ",
	"REQUEST_SUBJECT=bench.nc.req",
	"RESULT_STREAM=BENCH_NC_RES",
	"SUCCESS_SUBJECT=bench.nc.success",
	"FAILURE_SUBJECT=bench.nc.failure",
	"CONSUMER_NAME=bench-nc",
}

// measureCluster starts a three-node cluster and on it the baseline (with
// workers workers) and two alert-domains serve processes (CONCURRENCY =
// workers; the result cache on, the default, and off, each with streams of
// its own), every stream on three replicas, and in each layout runs rounds
// throughput runs of n requests of each, in turns. It fails on any failure
// result or on a stream without three current replicas.
func measureCluster(tb testing.TB, n, rounds, workers int) *clusterRun {
	tb.Helper()
	r := &clusterRun{load: [2]string{loadAverage(), ""}}
	c := testenv.StartNATSCluster(tb, clusterNodes)
	pids := make([]int, len(c.Nodes))
	for i, node := range c.Nodes {
		pids[i] = node.PID()
	}
	// Every client connects to the first node (see layout).
	entry := c.Nodes[0].URL()
	_, js := testenv.Connect(tb, entry)

	base := startBaselineOn(tb, js, clusterNodes, workers, *benchAPI)
	base.url = entry
	base.pids = append(base.pids, pids...)
	r.baseline = &system{name: "baseline", target: base}

	replicas := fmt.Sprintf("STREAM_REPLICAS=%d", clusterNodes)
	on := serviceConfig{concurrency: workers, cacheTTL: "1h"}
	svc := startServiceOn(tb, entry, pids, on, replicas)
	r.products = append(r.products, &system{name: "serve, " + on.String(), target: svc.target, service: svc})

	off := serviceConfig{concurrency: workers, cacheTTL: "0"}
	svc = startServiceOn(tb, entry, pids, off, append([]string{replicas}, noCacheNames...)...)
	svc.requestSubject = "bench.nc.req"
	svc.resultStream = "BENCH_NC_RES"
	svc.resultSubjects = []string{"bench.nc.success", "bench.nc.failure"}
	r.products = append(r.products, &system{name: "serve, " + off.String(), target: svc.target, service: svc})

	// Another build of alert-domains (for example that of an earlier
	// commit), measured beside this one in the same rounds: cache on and
	// off, each with streams of its own.
	if bin := os.Getenv("BENCH_COMPARE_BINARY"); bin != "" {
		for _, cfg := range []serviceConfig{on, off} {
			p := "BENCH_CMP" + map[bool]string{true: "_NC", false: ""}[cfg.cacheTTL == "0"]
			lower := strings.ToLower(strings.ReplaceAll(p, "_", "."))
			svc := startBinaryOn(tb, bin, entry, pids, cfg, replicas, "CACHE_TTL="+cfg.cacheTTL,
				"REQUEST_STREAM="+p+"_REQ", "REQUEST_SUBJECT="+lower+".req", "RESULT_STREAM="+p+"_RES",
				"SUCCESS_SUBJECT="+lower+".success", "FAILURE_SUBJECT="+lower+".failure", "CONSUMER_NAME="+strings.ToLower(p))
			svc.requestSubject = lower + ".req"
			svc.resultStream = p + "_RES"
			svc.resultSubjects = []string{lower + ".success", lower + ".failure"}
			r.products = append(r.products, &system{name: "serve (" + bin + "), " + cfg.String(), target: svc.target, service: svc})
		}
	}

	checkReplicas(tb, c, baselineRequestStream, baselineResultStream,
		"DEFENDER_ALERT_DOMAIN_REQUESTS", serviceResultStream, "BENCH_NC_REQ", "BENCH_NC_RES")
	all := append([]*system{r.baseline}, r.products...)

	for _, l := range clusterLayouts {
		placeLeaders(tb, js, c.Nodes[l.node])
		// A warm-up after each move: pulls open on a consumer's old
		// leader end with their time-out.
		for _, s := range all {
			st := runWorkload(tb, s.target, max(n/10, 100))
			s.failures += st.failures
			progress("warm-up, %s, %s: %v", l.name, s.name, &st)
		}
		for round := range rounds {
			rates := map[*system]float64{}
			for i := range all {
				s := all[(i+round)%len(all)]
				st := runWorkload(tb, s.target, n)
				rates[s] = st.perSecond()
				s.rates = append(s.rates, st.perSecond())
				s.cpu = append(s.cpu, st.cpuPerRequest())
				s.failures += st.failures
				progress("R3 %s, round %d, %s: %v", l.name, round+1, s.name, &st)
			}
			for _, s := range r.products {
				ratio := rates[s] / rates[r.baseline]
				s.ratios = append(s.ratios, ratio)
				if s.byLayout == nil {
					s.byLayout = map[string][]float64{}
				}
				s.byLayout[l.name] = append(s.byLayout[l.name], ratio)
			}
		}
	}
	for _, s := range all {
		if s.failures > 0 {
			tb.Errorf("%s: %d failure results", s.name, s.failures)
		}
	}
	r.load[1] = loadAverage()
	return r
}

// checkReplicas fails unless the cluster holds the streams named, and
// every stream on it has clusterNodes replicas, all current.
func checkReplicas(tb testing.TB, c *testenv.NATSCluster, names ...string) {
	tb.Helper()
	js := c.JetStream(tb)
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	var have []string
	for name := range js.StreamNames(ctx).Name() {
		have = append(have, name)
	}
	for _, name := range names {
		if !slices.Contains(have, name) {
			tb.Fatalf("streams on the cluster: %v, lacking %s", have, name)
		}
	}
	for _, name := range have {
		info := c.WaitStreamCurrent(tb, js, name, 30*time.Second)
		if info.Config.Replicas != clusterNodes {
			tb.Fatalf("stream %s has %d replicas, want %d", name, info.Config.Replicas, clusterNodes)
		}
	}
}

// loadAverage returns the 1, 5 and 15 minute load averages of the machine.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func roundList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}
