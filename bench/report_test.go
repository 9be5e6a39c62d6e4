package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// ReportCommand runs BenchmarkReport; the README and BENCHMARKS.md give it.
const ReportCommand = "go test ./bench -run '^$' -bench '^BenchmarkReport$' -benchtime 1x -timeout 30m -bench.write"

// The targets the report checks.
const (
	targetRatio      = 0.6
	targetAddedP99   = 10 * time.Millisecond
	targetRSS        = 100 << 20
	targetStartup    = 300 * time.Millisecond
	rssConcurrency   = 256
	startupStarts    = 5
	generatedMarker  = "<!-- Everything above this line is written by BenchmarkReport; what follows is kept. -->"
	benchmarksMDPath = "BENCHMARKS.md"
)

// system is one of the systems the report measures.
type system struct {
	name    string
	target  target
	service *service // nil for the baseline

	rates    []float64            // req/s of each throughput run
	ratios   []float64            // req/s over the baseline's in the same round
	byLayout map[string][]float64 // ratios of the rounds of each layout (BenchmarkCluster)
	cpu      []float64            // processor µs per request of each throughput run
	natsCPU  []float64            // the same, of the nats-server alone
	serveCPU []float64            // the same, of alert-domains serve alone
	p50, p99 []time.Duration      // latency percentiles of each paced run
	failures int
}

// report is every figure of one run of BenchmarkReport.
type report struct {
	started  time.Time
	baseline *system
	products []*system // cache on (the headline), cache off
	rss      []rssFigure
	startup  []startup
}

type rssFigure struct {
	cfg  serviceConfig
	rate float64 // req/s of its throughput run(s)
	peak int64   // bytes
}

// BenchmarkReport measures the baseline and alert-domains serve (with the
// result cache on and off) in one run on the same machine: throughput
// rounds in turns, so that other load on the machine touches all alike;
// latency at a steady rate; peak RSS at CONCURRENCY=256; start-up to ready.
// It prints the figures as Markdown and, with -bench.write, writes them to
// BENCHMARKS.md at the module root.
func BenchmarkReport(b *testing.B) {
	for b.Loop() {
		r := measureReport(b)
		var buf bytes.Buffer
		r.writeFigures(&buf)
		fmt.Fprintf(os.Stdout, "\n%s\n", buf.Bytes())
		headline := r.products[0]
		rss := r.rssFor(rssConcurrency, "1h")
		b.ReportMetric(median(r.baseline.rates), "baseline-req/s")
		b.ReportMetric(median(headline.rates), "serve-req/s")
		b.ReportMetric(median(headline.ratios), "ratio")
		b.ReportMetric(ms(median(headline.p99)-median(r.baseline.p99)), "added-p99-ms")
		b.ReportMetric(mib(rss.peak), "RSS-MiB")
		b.ReportMetric(ms(medianStartup(r.startup).observed), "ready-ms")
		if *benchWrite {
			if err := writeBenchmarksMD(filepath.Join("..", benchmarksMDPath), buf.Bytes()); err != nil {
				b.Fatalf("write %s: %v", benchmarksMDPath, err)
			}
			b.Logf("wrote %s", benchmarksMDPath)
		}
	}
}

func measureReport(b *testing.B) *report {
	b.Helper()
	r := &report{started: time.Now()}
	r.baseline = &system{name: "baseline", target: startBaseline(b, *benchWorkers)}
	for _, cfg := range []serviceConfig{{concurrency: 64, cacheTTL: "1h"}, {concurrency: 64, cacheTTL: "0"}} {
		svc := startService(b, cfg)
		r.products = append(r.products, &system{name: "serve, " + cfg.String(), target: svc.target, service: svc})
	}
	all := append([]*system{r.baseline}, r.products...)

	// Warm up: connections, tokens, the page cache of the stores.
	for _, s := range all {
		st := runWorkload(b, s.target, max(*benchN/10, 100))
		progress("warm-up, %s: %v", s.name, &st)
	}
	for round := range *benchRounds {
		rates := map[*system]float64{}
		// A different system goes first in each round.
		for i := range all {
			s := all[(i+round)%len(all)]
			st := runWorkload(b, s.target, *benchN)
			rates[s] = st.perSecond()
			s.rates = append(s.rates, st.perSecond())
			s.cpu = append(s.cpu, st.cpuPerRequest())
			byProc := st.procCPUPerRequest() // this process, nats-server, serve
			s.natsCPU = append(s.natsCPU, byProc[1])
			if len(byProc) > 2 {
				s.serveCPU = append(s.serveCPU, byProc[2])
			}
			s.failures += st.failures
			progress("round %d, %s: %v", round+1, s.name, &st)
		}
		for _, s := range r.products {
			s.ratios = append(s.ratios, rates[s]/rates[r.baseline])
		}
	}
	for round := range *benchRounds {
		for i := range all {
			s := all[(i+round)%len(all)]
			st := runPaced(b, s.target, *benchRate, *benchDuration)
			s.p50 = append(s.p50, st.percentile(0.5))
			s.p99 = append(s.p99, st.percentile(0.99))
			s.failures += st.failures
			progress("paced round %d, %s: %v", round+1, s.name, &st)
		}
	}
	for _, s := range r.products {
		r.rss = append(r.rss, rssFigure{cfg: s.service.cfg, peak: s.service.peakRSS(b), rate: median(s.rates)})
	}

	// Peak RSS at CONCURRENCY=256, with a service of its own (the peak never
	// goes down), after the warm-up and one throughput run.
	for _, ttl := range []string{"1h", "0"} {
		cfg := serviceConfig{concurrency: rssConcurrency, cacheTTL: ttl}
		svc := startService(b, cfg)
		runWorkload(b, svc.target, max(*benchN/10, 100))
		st := runWorkload(b, svc.target, *benchN)
		progress("serve, %v: %v", cfg, &st)
		r.rss = append(r.rss, rssFigure{cfg: cfg, rate: st.perSecond(), peak: svc.peakRSS(b)})
		if st.failures > 0 {
			b.Errorf("%v: %d failure results", cfg, st.failures)
		}
	}

	ns := testenv.StartNATS(b)
	emu, certFile := startEmulator(b)
	r.startup = measureStartup(b, ns, emu, certFile, startupStarts)
	for _, s := range all {
		if s.failures > 0 {
			b.Errorf("%s: %d failure results", s.name, s.failures)
		}
	}
	return r
}

// progress prints a line at once, so that a long run shows where it is.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%s  %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

// writeFigures writes the figures, the machine and the command as Markdown.
func (r *report) writeFigures(w io.Writer) {
	base, head, off := r.baseline, r.products[0], r.products[1]
	p := func(s *system, q float64) time.Duration {
		if q == 0.5 {
			return median(s.p50)
		}
		return median(s.p99)
	}
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "alert-domains serve against a baseline loop with the same moving parts and none of the product (see `bench/doc.go`), measured in one run on the same machine on %s.\n\n", r.started.UTC().Format("2006-01-02"))
	fmt.Fprintf(w, "```sh\n%s\n```\n\n", ReportCommand)
	fmt.Fprintf(w, "Machine: %s.\n\n", machine())
	fmt.Fprintf(w, "Workload: %d requests per throughput run, %d rounds taken in turns (the median is shown), the baseline with %d workers and the service with `CONCURRENCY=64`, `DEFENDER_RATE_LIMITS=none`, `LOG_LEVEL=warn`, the emulator answering at once; latency at a steady %d requests/s for %v, %d times in turns (the median of the runs' percentiles is shown, so that a burst of other work on the machine during one run does not decide it). Every alert ID is new, so with the cache on every request is a miss: a cache read and a cache write on top of the baseline's work. The headline is the default configuration, cache on.\n\n",
		*benchN, *benchRounds, *benchWorkers, *benchRate, *benchDuration, *benchRounds)

	fmt.Fprintf(w, "| | baseline | serve, cache on (default) | serve, cache off (`CACHE_TTL=0`) |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(w, "| throughput, req/s | %.0f | %.0f | %.0f |\n", median(base.rates), median(head.rates), median(off.rates))
	fmt.Fprintf(w, "| ratio to the baseline (median of rounds) | 1 | %.2f | %.2f |\n", median(head.ratios), median(off.ratios))
	fmt.Fprintf(w, "| processor time per request, all processes, µs | %.0f | %.0f | %.0f |\n", median(base.cpu), median(head.cpu), median(off.cpu))
	fmt.Fprintf(w, "| … of which nats-server, µs | %.0f | %.0f | %.0f |\n", median(base.natsCPU), median(head.natsCPU), median(off.natsCPU))
	fmt.Fprintf(w, "| … of which alert-domains serve, µs | – | %.0f | %.0f |\n", median(head.serveCPU), median(off.serveCPU))
	fmt.Fprintf(w, "| p50 latency at %d req/s, ms | %.2f | %.2f (+%.2f) | %.2f (+%.2f) |\n", *benchRate,
		ms(p(base, 0.5)), ms(p(head, 0.5)), ms(p(head, 0.5)-p(base, 0.5)), ms(p(off, 0.5)), ms(p(off, 0.5)-p(base, 0.5)))
	fmt.Fprintf(w, "| p99 latency at %d req/s, ms | %.2f | %.2f (+%.2f) | %.2f (+%.2f) |\n", *benchRate,
		ms(p(base, 0.99)), ms(p(head, 0.99)), ms(p(head, 0.99)-p(base, 0.99)), ms(p(off, 0.99)), ms(p(off, 0.99)-p(base, 0.99)))
	for _, c := range []int{rssConcurrency, 64} {
		on, offRSS := r.rssFor(c, "1h"), r.rssFor(c, "0")
		fmt.Fprintf(w, "| peak RSS of the service at `CONCURRENCY=%d`, MiB | – | %.1f | %.1f |\n", c, mib(on.peak), mib(offRSS.peak))
	}
	on256, off256 := r.rssFor(rssConcurrency, "1h"), r.rssFor(rssConcurrency, "0")
	fmt.Fprintf(w, "| throughput at `CONCURRENCY=%d`, req/s | – | %.0f | %.0f |\n", rssConcurrency, on256.rate, off256.rate)
	st := medianStartup(r.startup)
	fmt.Fprintf(w, "\nStart-up to ready with an external NATS (cache on, `LOG_LEVEL=info`), median of %d starts: **%.0f ms** from starting the process to reading its `\"msg\":\"ready\"` line; %.0f ms by the `startup` the line reports (measured in the process from the start of `serve` after the configuration is read). All starts, ms:", len(r.startup), ms(st.observed), ms(st.inProcess))
	for _, s := range r.startup {
		fmt.Fprintf(w, " %.0f/%.0f", ms(s.observed), ms(s.inProcess))
	}
	fmt.Fprintf(w, " (the first creates the streams).\n\n")

	fmt.Fprintf(w, "| target | measured | |\n|---|---:|---|\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	ratio := median(head.ratios)
	fmt.Fprintf(w, "| throughput ≥ %.1f× the baseline | %.2f× | %s |\n", targetRatio, ratio, verdict(ratio >= targetRatio))
	added := p(head, 0.99) - p(base, 0.99)
	fmt.Fprintf(w, "| p99 added latency < %v at %d req/s | %.2f ms | %s |\n", targetAddedP99, *benchRate, ms(added), verdict(added < targetAddedP99))
	fmt.Fprintf(w, "| RSS < %d MiB at `CONCURRENCY=%d` | %.1f MiB | %s |\n", targetRSS>>20, rssConcurrency, mib(on256.peak), verdict(on256.peak < targetRSS))
	fmt.Fprintf(w, "| start-up to ready < %v, external NATS | %.0f ms | %s |\n", targetStartup, ms(st.observed), verdict(st.observed < targetStartup))
	fmt.Fprintf(w, "\n%s\n", generatedMarker)
}

func (r *report) rssFor(concurrency int, ttl string) rssFigure {
	for _, f := range r.rss {
		if f.cfg.concurrency == concurrency && f.cfg.cacheTTL == ttl {
			return f
		}
	}
	return rssFigure{}
}

// writeBenchmarksMD replaces the generated part of the file at path with
// figures, and keeps what follows the marker (notes written by hand).
func writeBenchmarksMD(path string, figures []byte) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	out := bytes.TrimRight(figures, "\n")
	if _, kept, ok := bytes.Cut(old, []byte(generatedMarker)); ok {
		out = append(out, kept...)
	} else {
		out = append(out, '\n')
	}
	return os.WriteFile(path, out, 0o644)
}

// machine describes the machine: processors, CPU model, memory, Go.
func machine() string {
	model := "unknown CPU"
	memory := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					memory = fmt.Sprintf(", %.1f GiB memory", float64(kb)/(1<<20))
				}
			}
		}
	}
	return fmt.Sprintf("%d processors (nproc), %s%s, %s %s/%s", runtime.NumCPU(), model, memory, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// median returns the middle value of xs (the mean of the two middle ones
// for an even count), or zero for none.
func median[T float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
