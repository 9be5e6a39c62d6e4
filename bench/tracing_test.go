package bench

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// beforeTracing is the commit of main before traces were added: the build
// whose processor time per request tracing off is held to.
const beforeTracing = "524c3a7"

var benchBefore = flag.String("bench.before", os.Getenv("BENCH_BEFORE"),
	"BenchmarkServiceTracing: the alert-domains binary to compare with (env BENCH_BEFORE); empty: "+beforeTracing+" built from this repository")

// BenchmarkServiceTracing measures what traces cost: BenchmarkService
// (cache on, every request a miss) through the build before tracing, this
// build with tracing off, and this build with tracing on (always_on, every
// span exported over OTLP/HTTP to a receiver in this process that reads
// and drops them), each on a nats-server of its own, in turns
// (-bench.rounds). It reports the medians of alert-domains serve's
// processor time per request and of its ratios to the build before, round
// by round.
func BenchmarkServiceTracing(b *testing.B) {
	cfg := serviceConfig{concurrency: 64, cacheTTL: "1h"}
	var exported atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exported.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(sink.Close)
	setup := func(name, bin string, extra ...string) *system {
		ns := testenv.StartNATS(b)
		svc := startBinaryOn(b, bin, ns.URL(), []int{ns.PID()}, cfg, extra...)
		return &system{name: name, target: svc.target, service: svc}
	}
	before := setup("before tracing ("+beforeTracing+")", beforeBinary(b))
	off := setup("tracing off", testenv.BuildBinary(b))
	on := setup("tracing on, always_on", testenv.BuildBinary(b),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+sink.URL, "OTEL_TRACES_SAMPLER=always_on")
	all := []*system{before, off, on}
	for _, s := range all {
		st := runWorkload(b, s.target, max(*benchN/10, 100))
		progress("warm-up, %s: %v", s.name, &st)
	}
	for b.Loop() {
		for round := range *benchRounds {
			for i := range all {
				s := all[(i+round)%len(all)]
				st := runWorkload(b, s.target, *benchN)
				s.rates = append(s.rates, st.perSecond())
				s.serveCPU = append(s.serveCPU, st.procCPUPerRequest()[2])
				s.failures += st.failures
				progress("round %d, %s: %v, serve %.1f cpu-µs/req", round+1, s.name, &st, s.serveCPU[len(s.serveCPU)-1])
			}
			for _, s := range all[1:] {
				s.ratios = append(s.ratios, s.serveCPU[len(s.serveCPU)-1]/before.serveCPU[len(before.serveCPU)-1])
			}
		}
	}
	if exported.Load() == 0 {
		b.Error("tracing on exported nothing")
	}
	for _, s := range all {
		if s.failures > 0 {
			b.Errorf("%s: %d failure results", s.name, s.failures)
		}
		b.Logf("%s: serve cpu-µs/req %s (median %.1f), ratio to before %s (median %.3f), req/s median %.0f",
			s.name, roundList(s.serveCPU), median(s.serveCPU), roundList(s.ratios), median(s.ratios), median(s.rates))
	}
	b.ReportMetric(median(before.serveCPU), "before-cpu-µs/req")
	b.ReportMetric(median(off.serveCPU), "off-cpu-µs/req")
	b.ReportMetric(median(on.serveCPU), "on-cpu-µs/req")
	b.ReportMetric(100*(median(off.ratios)-1), "off-%")
	b.ReportMetric(100*(median(on.ratios)-1), "on-%")
}

// beforeBinary is -bench.before, or the binary of beforeTracing, built
// from a copy of that commit's tree (git archive) in a temporary directory.
func beforeBinary(b *testing.B) string {
	b.Helper()
	if *benchBefore != "" {
		return *benchBefore
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		b.Fatalf("the build before tracing needs git, or -bench.before: %v", err)
	}
	dir := b.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", strings.TrimSpace(string(root)), beforeTracing, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		b.Fatalf("git archive %s: %v\n%s", beforeTracing, err, out)
	}
	bin := filepath.Join(dir, "alert-domains")
	build := exec.Command("go", "build", "-o", bin, "./cmd/alert-domains")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build of %s: %v\n%s", beforeTracing, err, out)
	}
	return bin
}
