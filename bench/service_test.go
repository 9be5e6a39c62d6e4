package bench

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// The contract's default subjects and streams, which the service uses.
const (
	serviceRequestSubject = "defender.alerts.domains.requests"
	serviceResultStream   = "DEFENDER_ALERT_DOMAIN_RESULTS"
	serviceSuccessSubject = "defender.alerts.domains.success"
	serviceFailureSubject = "defender.alerts.domains.failure"
)

// serviceConfig is how one alert-domains serve process is run.
type serviceConfig struct {
	concurrency int
	cacheTTL    string // CACHE_TTL: "1h" (the default) or "0"
}

func (c serviceConfig) String() string {
	cache := "cache on"
	if c.cacheTTL == "0" {
		cache = "cache off"
	}
	return "CONCURRENCY=" + strconv.Itoa(c.concurrency) + ", " + cache
}

// service is alert-domains serve running as a process, on a nats-server
// process of its own, calling an emulator in this process.
type service struct {
	target
	cfg  serviceConfig
	proc *testenv.Process
}

// BenchmarkService is BenchmarkBaseline through alert-domains serve with
// the result cache on (the default); every request is a cache miss.
func BenchmarkService(b *testing.B) {
	benchmarkService(b, serviceConfig{concurrency: 64, cacheTTL: "1h"})
}

// BenchmarkServiceNoCache is BenchmarkService with CACHE_TTL=0.
func BenchmarkServiceNoCache(b *testing.B) {
	benchmarkService(b, serviceConfig{concurrency: 64, cacheTTL: "0"})
}

func benchmarkService(b *testing.B, cfg serviceConfig) {
	svc := startService(b, cfg)
	var total stats
	for b.Loop() {
		total.add(runWorkload(b, svc.target, *benchN))
	}
	b.Logf("alert-domains serve, %v: %v", cfg, &total)
	total.report(b, "")
	b.ReportMetric(mib(svc.peakRSS(b)), "peak-RSS-MiB")
}

// BenchmarkServiceLatency is BenchmarkBaselineLatency through alert-domains
// serve, cache on.
func BenchmarkServiceLatency(b *testing.B) {
	cfg := serviceConfig{concurrency: 64, cacheTTL: "1h"}
	svc := startService(b, cfg)
	var total stats
	for b.Loop() {
		total.add(runPaced(b, svc.target, *benchRate, *benchDuration))
	}
	b.Logf("alert-domains serve, %v, %d req/s for %v: %v", cfg, *benchRate, *benchDuration, &total)
	total.report(b, "")
}

// BenchmarkServiceStartup measures start-up to ready with an external NATS
// (the first start creates the streams, the others find them); see
// measureStartup.
func BenchmarkServiceStartup(b *testing.B) {
	ns := testenv.StartNATS(b)
	emu, certFile := startEmulator(b)
	var all []startup
	for b.Loop() {
		all = append(all, measureStartup(b, ns, emu, certFile, 1)...)
	}
	s := medianStartup(all)
	b.ReportMetric(ms(s.observed), "ready-ms")
	b.ReportMetric(ms(s.inProcess), "startup-ms")
}

// TestService runs a small workload through alert-domains serve, so that
// the benchmark keeps working.
func TestService(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and starts alert-domains and a nats-server")
	}
	svc := startService(t, serviceConfig{concurrency: 8, cacheTTL: "1h"})
	s := runWorkload(t, svc.target, 200)
	if s.requests != 200 || s.failures != 0 {
		t.Errorf("%d results, %d failures; want 200, 0", s.requests, s.failures)
	}
	if rss := svc.peakRSS(t); rss <= 0 {
		t.Errorf("peak RSS = %d", rss)
	}
	ns := testenv.StartNATS(t)
	emu, certFile := startEmulator(t)
	for _, st := range measureStartup(t, ns, emu, certFile, 1) {
		if st.observed <= 0 || st.inProcess <= 0 || st.inProcess > st.observed {
			t.Errorf("start-up: observed %v, in-process %v", st.observed, st.inProcess)
		}
	}
}

// startEmulator starts the Defender emulator, answering every alert at once,
// and writes its certificate to a file for SSL_CERT_FILE.
func startEmulator(tb testing.TB) (*emulator.Server, string) {
	tb.Helper()
	return testenv.StartEmulator(tb, emulator.Config{AnyAlert: true})
}

// serviceEnv is the environment of alert-domains serve against emu and the
// NATS server at natsURL, without a quota and logging warnings only; extra
// entries win.
func serviceEnv(emu *emulator.Server, certFile, natsURL string, extra ...string) []string {
	return testenv.ServiceEnv(emu, certFile, natsURL, append([]string{"DEFENDER_API=" + *benchAPI, "DEFENDER_RATE_LIMITS=none", "LOG_LEVEL=warn"}, extra...)...)
}

// startService starts a nats-server, the emulator and alert-domains serve
// (built without the race detector unless the benchmark has it) with the
// extra environment entries, and waits until /readyz answers 200.
func startService(tb testing.TB, cfg serviceConfig, extra ...string) *service {
	tb.Helper()
	ns := testenv.StartNATS(tb)
	return startServiceOn(tb, ns.URL(), []int{ns.PID()}, cfg, extra...)
}

// startServiceOn starts the emulator and alert-domains serve on the NATS
// server (or cluster) at natsURL, whose processes are natsPIDs, with the
// extra environment entries, and waits until /readyz answers 200.
func startServiceOn(tb testing.TB, natsURL string, natsPIDs []int, cfg serviceConfig, extra ...string) *service {
	tb.Helper()
	return startBinaryOn(tb, testenv.BuildBinary(tb), natsURL, natsPIDs, cfg, extra...)
}

// startBinaryOn is startServiceOn with the alert-domains binary at bin.
func startBinaryOn(tb testing.TB, bin, natsURL string, natsPIDs []int, cfg serviceConfig, extra ...string) *service {
	tb.Helper()
	emu, certFile := startEmulator(tb)
	listen := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(tb))
	env := serviceEnv(emu, certFile, natsURL, append([]string{
		"CONCURRENCY=" + strconv.Itoa(cfg.concurrency),
		"CACHE_TTL=" + cfg.cacheTTL,
		"HTTP_LISTEN=" + listen,
	}, extra...)...)
	proc := testenv.StartService(tb, bin, env, "serve")
	tb.Cleanup(func() { stopService(tb, proc) })
	proc.WaitHTTPReady(tb, "http://"+listen+"/readyz", time.Minute)
	return &service{
		target: target{
			url:            natsURL,
			requestSubject: serviceRequestSubject,
			resultStream:   serviceResultStream,
			resultSubjects: []string{serviceSuccessSubject, serviceFailureSubject},
			pids:           append(append([]int{os.Getpid()}, natsPIDs...), proc.PID()),
		},
		cfg:  cfg,
		proc: proc,
	}
}

// stopService stops alert-domains serve (see [testenv.Process.Stop]) and
// logs what it wrote: at LOG_LEVEL=warn only what went wrong, such as lost
// pulls, which explain a slow run.
func stopService(tb testing.TB, proc *testenv.Process) {
	tb.Helper()
	proc.Stop(tb)
	if out := proc.Output(); out != "" && !tb.Failed() {
		tb.Logf("alert-domains serve output:\n%s", out)
	}
}

// peakRSS is the service's peak resident set size so far, in bytes.
func (s *service) peakRSS(tb testing.TB) int64 {
	tb.Helper()
	rss, err := s.proc.PeakRSS()
	if err != nil {
		tb.Fatalf("peak RSS: %v", err)
	}
	return rss
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// startup is one start of alert-domains serve to ready.
type startup struct {
	observed  time.Duration // from starting the process to reading its ready line
	inProcess time.Duration // the startup the ready line reports
}

// measureStartup starts alert-domains serve n times against the running
// nats-server ns, each time until it logs "ready", then stops it with
// SIGTERM. The first start of a fresh server creates the streams; the
// others find them, as a restarted replica would.
func measureStartup(tb testing.TB, ns *testenv.NATSProcess, emu *emulator.Server, certFile string, n int) []startup {
	tb.Helper()
	bin := testenv.BuildBinary(tb)
	env := serviceEnv(emu, certFile, ns.URL(), "LOG_LEVEL=info", "CONCURRENCY=64")
	out := make([]startup, 0, n)
	for range n {
		start := time.Now()
		proc := testenv.StartService(tb, bin, env, "serve")
		line := proc.WaitForLine(tb, `"msg":"ready"`, 30*time.Second)
		observed := time.Since(start)
		var ready struct {
			Startup string `json:"startup"` // a Go duration, as the service's logs write durations
		}
		if err := json.Unmarshal([]byte(line), &ready); err != nil {
			tb.Fatalf("ready line %q: %v", line, err)
		}
		inProcess, err := time.ParseDuration(ready.Startup)
		if err != nil {
			tb.Fatalf("ready line %q: startup: %v", line, err)
		}
		out = append(out, startup{observed: observed, inProcess: inProcess})
		proc.Stop(tb)
	}
	return out
}

// medianStartup returns the median of each of the two times.
func medianStartup(all []startup) startup {
	if len(all) == 0 {
		return startup{}
	}
	obs := make([]time.Duration, len(all))
	in := make([]time.Duration, len(all))
	for i, s := range all {
		obs[i], in[i] = s.observed, s.inProcess
	}
	return startup{observed: median(obs), inProcess: median(in)}
}
