package bench

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TenantsCommand runs BenchmarkTenants; BENCHMARKS.md gives it.
const TenantsCommand = "go test ./bench -run '^$' -bench '^BenchmarkTenants$' -benchtime 1x -timeout 20m"

// The targets the tenants benchmark checks.
const (
	targetQuotaShare = 0.9                   // of its own quota, for every saturated tenant
	targetTrickleP99 = 50 * time.Millisecond // the p99 of a tenant with quota to spare
)

// tenantsWorkload is the shape of a tenants run: many tenants with a backlog
// beyond their quota, and one tenant with quota to spare sending a trickle.
type tenantsWorkload struct {
	saturated   int             // tenants with a backlog, named t01, t02, …
	limit       connector.Limit // the rateLimits of each of them
	run         time.Duration   // the measured span
	trickleRate int             // requests per second of the tenant "trickle", below its quota
	concurrency int             // CONCURRENCY
}

// tenantsBench is BenchmarkTenants': 50 tenants in one file, 49 of them
// saturated, the service at its default concurrency. Every tenant has the
// same quota, as Defender gives every app registration the same one; the
// trickle tenant uses half of its.
var tenantsBench = tenantsWorkload{
	saturated:   49,
	limit:       connector.Limit{Count: 5, Window: time.Second},
	run:         12 * time.Second,
	trickleRate: 4,
	concurrency: 16,
}

// backlog is the requests published at once for each saturated tenant: two
// windows' worth more than its quota allows over the run, so that it never
// runs dry while it is measured.
func (w tenantsWorkload) backlog() int {
	return w.limit.Count * (int(w.run/w.limit.Window) + 2)
}

// ideal is the calls a saturated tenant's quota allows over the run.
func (w tenantsWorkload) ideal() float64 {
	return float64(w.limit.Count) * w.run.Seconds() / w.limit.Window.Seconds()
}

// settings is the configuration of the run, as printed with its figures.
func (w tenantsWorkload) settings() string {
	return fmt.Sprintf("%d tenants in one TENANTS_FILE, each with its own app registration, secret and emulator; "+
		"every tenant with rateLimits %v; %d saturated (a backlog of %d requests each, %d in all, published at once in shuffled order); "+
		"the tenant \"trickle\" sending %d requests/s (%.0f%% of its quota); measured over %v; "+
		"alert-domains serve with CONCURRENCY=%d, QUOTA_SCOPE=shared, the result cache on (every alert ID new), LOG_LEVEL=warn; one nats-server, file storage",
		w.saturated+1, w.limit, w.saturated, w.backlog(), w.saturated*w.backlog(),
		w.trickleRate, 100*float64(w.trickleRate)*w.limit.Window.Seconds()/float64(w.limit.Count), w.run, w.concurrency)
}

// tenantsRun is the figures of one run of measureTenants.
type tenantsRun struct {
	w            tenantsWorkload
	alone, busy  trickleStats    // the trickle tenant alone, then beside the saturated ones
	calls        []int           // each saturated tenant's domains calls within the run
	most         []int           // each one's most calls in any sliding window of its limit
	names        []string        // the saturated tenants
	start        time.Time       // the first backlog publish
	published    time.Duration   // storing the saturated tenants' backlogs
	intake       time.Duration   // from the first backlog publish until the service held every backlog request
	serviceStart time.Duration   // start of the service to ready, 50 tenants
	loadAverage  [2]string       // before and after
	drained      []time.Duration // each saturated tenant's first backlog publish to its last call; 0: not drained
}

// trickleStats is the latency of the trickle tenant's requests; missing
// ones count as waiting until the timeout.
type trickleStats struct {
	stats
	missing int
	timeout time.Duration
	// when the requests were sent and their results read: the first and
	// the last of each
	sentFirst, sentLast     time.Time
	resultFirst, resultLast time.Time
}

func (t trickleStats) String() string {
	s := fmt.Sprintf("%d requests: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d failures",
		t.requests, ms(t.percentile(0.5)), ms(t.percentile(0.99)), ms(t.percentile(1)), t.failures)
	if t.missing > 0 {
		s += fmt.Sprintf(", %d without a result within %v (counted as %v)", t.missing, t.timeout, t.timeout)
	}
	return s
}

func (r *tenantsRun) ratios() []float64 {
	out := make([]float64, len(r.calls))
	for i, n := range r.calls {
		out[i] = float64(n) / r.w.ideal()
	}
	return out
}

// BenchmarkTenants measures the isolation of tenants: 49 tenants
// with a backlog beyond their quota (20/2s each) and one tenant with the
// same quota sending 5 requests/s, half of it, all in one TENANTS_FILE, one
// alert-domains serve at its default CONCURRENCY=16. It reports how much of its own
// quota each saturated tenant used over the run (its domains calls against
// limit × run / window) and the trickle tenant's request-to-result latency,
// against the same trickle sent before, with no saturated tenant, and when
// each backlog was drained. A missed target is reported, not failed: the
// benchmark prints "met" or "missed" per target and the figures as
// Markdown; with -bench.write (or BENCH_WRITE=1) it replaces those of the
// section "50 tenants" of BENCHMARKS.md.
func BenchmarkTenants(b *testing.B) {
	for b.Loop() {
		r := measureTenants(b, tenantsBench)
		ratios := r.ratios()
		b.ReportMetric(slices.Min(ratios), "min-quota-share")
		b.ReportMetric(median(ratios), "median-quota-share")
		b.ReportMetric(float64(slices.Max(r.most))/float64(r.w.limit.Count), "most-in-window/limit")
		b.ReportMetric(ms(r.alone.percentile(0.5)), "alone-p50-ms")
		b.ReportMetric(ms(r.alone.percentile(0.99)), "alone-p99-ms")
		b.ReportMetric(ms(r.busy.percentile(0.5)), "busy-p50-ms")
		b.ReportMetric(ms(r.busy.percentile(0.99)), "busy-p99-ms")
		b.ReportMetric(0, "ns/op")
		var md bytes.Buffer
		r.writeMarkdown(&md)
		fmt.Fprintf(os.Stdout, "\n%s\n", md.Bytes())
		if *benchWrite {
			if err := writeTenantsSection(filepath.Join("..", benchmarksMDPath), md.Bytes()); err != nil {
				b.Fatalf("write %s: %v", benchmarksMDPath, err)
			}
			b.Logf("wrote the figures of the section \"50 tenants\" of %s", benchmarksMDPath)
		}
	}
}

// TestTenants runs a short version of BenchmarkTenants, so that the
// benchmark keeps working: every trickle request answered with a success,
// every saturated tenant served, and none over its quota as Defender sees
// it. The targets themselves are the benchmark's to report.
func TestTenants(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and starts alert-domains, a nats-server and five emulators")
	}
	w := tenantsWorkload{
		saturated:   4,
		limit:       connector.Limit{Count: 5, Window: time.Second},
		run:         3 * time.Second,
		trickleRate: 2,
		concurrency: 4,
	}
	r := measureTenants(t, w)
	for _, ts := range []trickleStats{r.alone, r.busy} {
		if want := w.trickleRate * int(w.run/time.Second); ts.requests != want || ts.failures != 0 || ts.missing != 0 {
			t.Errorf("trickle: %v; want %d successes", ts, want)
		}
	}
	for i, name := range r.names {
		if r.drained[i] == 0 {
			t.Errorf("%s: backlog not drained", name)
		}
		if r.calls[i] == 0 {
			t.Errorf("%s: no domains call within the run", name)
		}
		if r.most[i] > w.limit.Count {
			t.Errorf("%s: %d calls in a sliding %v, limit %d", name, r.most[i], w.limit.Window, w.limit.Count)
		}
	}
	var md bytes.Buffer
	r.writeMarkdown(&md)
	if !strings.Contains(md.String(), "| every saturated tenant uses") {
		t.Errorf("markdown lacks the targets:\n%s", md.String())
	}
	// The section the benchmark writes is there, with its command.
	if md, err := os.ReadFile(filepath.Join("..", benchmarksMDPath)); err != nil {
		t.Error(err)
	} else if s := string(md); !strings.Contains(s, TenantsCommand) || !strings.Contains(s, tenantsBegin) || !strings.Contains(s, tenantsEnd) {
		t.Errorf("%s lacks the command %q or the lines around the figures", benchmarksMDPath, TenantsCommand)
	}
	doc := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	old := "# Benchmarks\n\n## 50 tenants\n\nHow.\n\n" + tenantsBegin + "\n\nold figures\n\n" + tenantsEnd + "\n\nNotes.\n"
	if err := os.WriteFile(doc, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeTenantsSection(doc, md.Bytes()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\n## 50 tenants\n\nHow.\n\n" + tenantsBegin + "\n\n" + strings.TrimSpace(md.String()) + "\n\n" + tenantsEnd + "\n\nNotes.\n"
	if string(got) != want {
		t.Errorf("BENCHMARKS.md after writing the figures:\n%s\nwant:\n%s", got, want)
	}
}

// tenantRig is the tenants' emulators and the service that serves them.
type tenantRig struct {
	url       string
	emulators []*emulator.Server // the saturated tenants', in the order of names
	names     []string
	trickle   target
}

// tenantTarget is the target of one tenant: its request subject and its
// result subjects in the contract's result stream.
func tenantTarget(url, name string, pids []int) target {
	return target{
		url:            url,
		requestSubject: serviceRequestSubject + "." + name,
		resultStream:   serviceResultStream,
		resultSubjects: []string{serviceSuccessSubject + "." + name, serviceFailureSubject + "." + name},
		pids:           pids,
	}
}

// startTenants starts a nats-server, one emulator per tenant (its own
// tenant ID, client ID and secret, answering every alert at once) and
// alert-domains serve with a tenants file naming them all: the secrets of
// even tenants in files, of odd ones in variables, as a provider might mix
// them.
func startTenants(tb testing.TB, w tenantsWorkload) (*tenantRig, time.Duration) {
	tb.Helper()
	ns := testenv.StartNATS(tb)
	dir := tb.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(tb))
	env := []string{
		"NATS_URL=" + ns.URL(),
		"HTTP_LISTEN=" + listen,
		"LOG_FORMAT=json",
		"LOG_LEVEL=warn",
		"CONCURRENCY=" + strconv.Itoa(w.concurrency),
		"QUOTA_SCOPE=shared",
	}
	var (
		doc   strings.Builder
		certs [][]byte
		rig   = &tenantRig{url: ns.URL()}
	)
	doc.WriteString("tenants:\n")
	for i := range w.saturated + 1 {
		name := fmt.Sprintf("t%02d", i+1)
		if i == w.saturated {
			name = "trickle"
		}
		secret := name + "-secret-" + strconv.Itoa(rand.IntN(1<<30))
		emu := emulator.NewServer(emulator.Config{TenantID: fmt.Sprintf("6f1c2b9e-0000-4000-8000-%012d", i+1),
			ClientID: fmt.Sprintf("0a3e5f7d-0000-4000-8000-%012d", i+1), ClientSecret: secret, AnyAlert: true})
		tb.Cleanup(emu.Close)
		if raw := emu.Certificate().Raw; !slices.ContainsFunc(certs, func(c []byte) bool { return slices.Equal(c, raw) }) {
			certs = append(certs, raw)
		}
		fmt.Fprintf(&doc, "  - name: %s\n    tenantId: %s\n    clientId: %s\n    apiUrl: %s\n    authorityHost: %s\n    rateLimits: %s\n",
			name, emu.TenantID(), emu.ClientID(), emu.URL, emu.AuthorityHost(), w.limit)
		if i%2 == 0 {
			f := filepath.Join(dir, name+".secret")
			if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(&doc, "    clientSecretFile: %s\n", f)
		} else {
			v := "SECRET_" + strings.ToUpper(name)
			fmt.Fprintf(&doc, "    clientSecretEnv: %s\n", v)
			env = append(env, v+"="+secret)
		}
		if i < w.saturated {
			rig.emulators = append(rig.emulators, emu)
			rig.names = append(rig.names, name)
		}
	}
	var bundle []byte
	for _, raw := range certs {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: raw})...)
	}
	caFile, tenantsFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(caFile, bundle, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(tenantsFile, []byte(doc.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	env = append(env, "SSL_CERT_FILE="+caFile, "TENANTS_FILE="+tenantsFile)

	bin := testenv.BuildBinary(tb)
	start := time.Now()
	proc := testenv.StartService(tb, bin, env, "serve")
	tb.Cleanup(func() { stopService(tb, proc) })
	proc.WaitHTTPReady(tb, "http://"+listen+"/readyz", time.Minute)
	ready := time.Since(start)
	rig.trickle = tenantTarget(ns.URL(), "trickle", []int{os.Getpid(), ns.PID(), proc.PID()})
	return rig, ready
}

// measureTenants starts the rig, warms every tenant up (its token and its
// connections, one request each), then sends the trickle alone for the run,
// then publishes every saturated tenant's backlog at once and sends the
// trickle again beside it. A saturated tenant's calls are counted at its
// emulator over the run from the first backlog publish.
func measureTenants(tb testing.TB, w tenantsWorkload) *tenantsRun {
	tb.Helper()
	// The warm-up's calls leave the saturated tenants' windows during the
	// trickle alone, which lasts the run.
	if w.run <= w.limit.Window {
		tb.Fatalf("run %v must be longer than the window %v", w.run, w.limit.Window)
	}
	r := &tenantsRun{w: w, loadAverage: [2]string{loadAverage(), ""}}
	rig, ready := startTenants(tb, w)
	r.names, r.serviceStart = rig.names, ready
	progress("tenants: service ready in %v; %s", ready.Round(time.Millisecond), w.settings())

	for _, name := range append(slices.Clone(rig.names), "trickle") {
		st := runWorkload(tb, tenantTarget(rig.url, name, nil), 1)
		if st.failures != 0 {
			tb.Fatalf("warm-up of tenant %s: a failure result", name)
		}
	}

	// Every request has an alert ID never asked before, so the result cache
	// never answers one. A trickle result later than two minutes plus four
	// times a backlog's drain at exactly the quota counts as missing.
	timeout := 2*time.Minute + 4*time.Duration(w.backlog()/w.limit.Count)*w.limit.Window
	r.alone = runTrickle(tb, rig.trickle, w.trickleRate, w.run, timeout)
	progress("tenants: trickle alone: %v", r.alone)

	start, published := publishBacklogs(tb, rig, w)
	r.start, r.published = start, published
	progress("tenants: %d backlog requests stored in %v", w.saturated*w.backlog(), published.Round(time.Millisecond))
	// The trickle is measured beside saturated tenants, not beside the
	// intake of their backlog: it starts once the service holds every
	// backlog request (they wait for their quota).
	r.intake = waitIntake(tb, rig.url, start, timeout)
	progress("tenants: every backlog request in hand %v after the first publish", r.intake.Round(time.Millisecond))
	r.busy = runTrickle(tb, rig.trickle, w.trickleRate, w.run, timeout)
	progress("tenants: trickle beside %d saturated tenants: %v", w.saturated, r.busy)

	end := start.Add(w.run)
	for _, emu := range rig.emulators {
		times := emu.CallTimes()
		n := 0
		for _, t := range times {
			if !t.Before(start) && t.Before(end) {
				n++
			}
		}
		r.calls = append(r.calls, n)
		r.most = append(r.most, mostInWindow(times, w.limit.Window))
	}
	r.drained = waitDrained(rig, w, start, timeout)
	r.loadAverage[1] = loadAverage()
	ratios := r.ratios()
	progress("tenants: quota used over %v by each saturated tenant: min %.2f, median %.2f, max %.2f; most calls in a sliding %v: %d (limit %d); backlogs drained after %v median, %v slowest (0: not drained), ideal %v",
		w.run, slices.Min(ratios), median(ratios), slices.Max(ratios), w.limit.Window, slices.Max(r.most), w.limit.Count,
		median(r.drained).Round(time.Millisecond), slices.Max(r.drained).Round(time.Millisecond), w.idealDrain())
	return r
}

// waitIntake waits until the request consumer has no request left to
// deliver, and returns the time since start.
func waitIntake(tb testing.TB, url string, start time.Time, timeout time.Duration) time.Duration {
	tb.Helper()
	nc, err := nats.Connect(url, nats.Name("bench-intake"))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := js.Consumer(ctx, "DEFENDER_ALERT_DOMAIN_REQUESTS", "alert-domains")
		if err == nil && c.CachedInfo().NumPending == 0 {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("the service did not take in the backlog within %v", timeout)
		case <-tick.C:
		}
	}
}

// waitDrained waits until every saturated tenant has made a call for each
// request of its backlog (besides its warm-up call), or timeout passes, and
// returns for each tenant the time from start to its last call (0 when it
// has not drained).
func waitDrained(rig *tenantRig, w tenantsWorkload, start time.Time, timeout time.Duration) []time.Duration {
	drained := func() bool {
		for _, emu := range rig.emulators {
			if emu.Calls() < w.backlog()+1 {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(timeout); !drained() && time.Now().Before(deadline); {
		<-tick.C
	}
	out := make([]time.Duration, len(rig.emulators))
	for i, emu := range rig.emulators {
		if times := emu.CallTimes(); len(times) >= w.backlog()+1 {
			out[i] = times[len(times)-1].Sub(start)
		}
	}
	return out
}

// idealDrain is the time a backlog takes at exactly its quota: the first
// window's calls at once, then a window for each further window's worth.
func (w tenantsWorkload) idealDrain() time.Duration {
	return time.Duration(w.backlog()/w.limit.Count-1) * w.limit.Window
}

// publishBacklogs stores every saturated tenant's backlog, the requests of
// all tenants shuffled together (a mixed backlog, the same order each run),
// and returns when publishing began and how long storing took.
func publishBacklogs(tb testing.TB, rig *tenantRig, w tenantsWorkload) (time.Time, time.Duration) {
	tb.Helper()
	nc, err := nats.Connect(rig.url, nats.Name("bench-backlog"))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	var errs errorCount
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(1024),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { errs.add(err) }),
	)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	type req struct{ tenant, n int }
	all := make([]req, 0, w.saturated*w.backlog())
	for n := range w.backlog() {
		for tenant := range w.saturated {
			all = append(all, req{tenant, n})
		}
	}
	rand.New(rand.NewPCG(11, 50)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	prefix := "backlog" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_"
	start := time.Now()
	for _, q := range all {
		id := prefix + rig.names[q.tenant] + "_" + strconv.Itoa(q.n)
		msg := &nats.Msg{Subject: serviceRequestSubject + "." + rig.names[q.tenant], Data: []byte(id)}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithStallWait(time.Minute)); err != nil {
			tb.Fatalf("publish backlog: %v", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		tb.Fatal("backlog not stored within 2m")
	}
	if n, first := errs.get(); n > 0 {
		tb.Fatalf("%d backlog requests not stored, the first: %v", n, first)
	}
	return start, time.Since(start)
}

// runTrickle publishes rate requests per second to tg for d and waits up
// to timeout after the last for their results. Unlike runPaced it does not
// fail when results are late: those missing count as the timeout.
func runTrickle(tb testing.TB, tg target, rate int, d, timeout time.Duration) trickleStats {
	tb.Helper()
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	nc, err := nats.Connect(tg.url, nats.Name("bench-trickle"))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	prefix := "trickle" + strconv.FormatInt(time.Now().UnixNano(), 36) + "_"
	obs := observe(tb, js, tg, prefix, n)
	defer obs.stop()
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			timer.Reset(wait)
			<-timer.C
		}
		id := prefix + strconv.Itoa(i)
		obs.sent[i].Store(time.Now().UnixNano())
		// Each request is stored before the next is sent, as a SIEM
		// forwarding alerts one by one would.
		if _, err := js.PublishMsg(tb.Context(), &nats.Msg{Subject: tg.requestSubject, Data: []byte(id)}, jetstream.WithMsgID(id)); err != nil {
			tb.Fatalf("publish trickle request %d: %v", i, err)
		}
	}
	out := trickleStats{timeout: timeout}
	select {
	case <-obs.done:
	case <-time.After(timeout):
	}
	out.stats = obs.stats(start)
	out.missing = n - out.requests
	out.sentFirst, out.sentLast = time.Unix(0, obs.sent[0].Load()), time.Unix(0, obs.sent[n-1].Load())
	obs.mu.Lock()
	out.resultFirst, out.resultLast = obs.first, obs.last
	obs.mu.Unlock()
	for range out.missing {
		out.latencies = append(out.latencies, timeout)
	}
	return out
}

// mostInWindow is the most calls in any sliding window, times in order.
func mostInWindow(times []time.Time, window time.Duration) int {
	most, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= window {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

// writeMarkdown writes the settings, the figures and the targets, ready for
// the "50 tenants" section of BENCHMARKS.md.
func (r *tenantsRun) writeMarkdown(w io.Writer) {
	ratios := r.ratios()
	atTarget := 0
	for _, x := range ratios {
		if x >= targetQuotaShare {
			atTarget++
		}
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	fmt.Fprintf(w, "Measured on %s; %s.\n\n", time.Now().UTC().Format("2006-01-02"), machine())
	fmt.Fprintf(w, "Settings: %s. Start of the service to ready: %v. Load average before %s, after %s.\n\n",
		r.w.settings(), r.serviceStart.Round(time.Millisecond), r.loadAverage[0], r.loadAverage[1])
	fmt.Fprintf(w, "| the tenant with quota to spare, %d requests/s | alone | beside %d saturated tenants | added |\n|---|---:|---:|---:|\n", r.w.trickleRate, r.w.saturated)
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50 latency, ms", 0.5}, {"p99 latency, ms", 0.99}, {"max latency, ms", 1}} {
		a, b := r.alone.percentile(q.p), r.busy.percentile(q.p)
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %+.1f |\n", q.name, ms(a), ms(b), ms(b-a))
	}
	fmt.Fprintf(w, "| results (failures; none within %v) | %d (%d; %d) | %d (%d; %d) | |\n\n",
		r.busy.timeout, r.alone.requests, r.alone.failures, r.alone.missing, r.busy.requests, r.busy.failures, r.busy.missing)
	since := func(t time.Time) float64 { return t.Sub(r.start).Seconds() }
	fmt.Fprintf(w, "Beside the saturated tenants, the trickle's requests were sent from %.1f to %.1f s after the first backlog publish and their results read from %.1f to %.1f s.\n\n",
		since(r.busy.sentFirst), since(r.busy.sentLast), since(r.busy.resultFirst), since(r.busy.resultLast))
	fmt.Fprintf(w, "Each saturated tenant's domains calls over the %v from the first backlog publish, against its quota over that span (%v × %v / %v = %.0f): lowest %.2f, median %.2f, highest %.2f; %d of %d tenants at ≥ %.1f. Most calls of one tenant in any sliding %v: %d (limit %d). Storing the %d backlog requests took %v; the service held all of them %v after the first publish, and the trickle began then.\n\n",
		r.w.run, r.w.limit.Count, r.w.run, r.w.limit.Window, r.w.ideal(),
		slices.Min(ratios), median(ratios), slices.Max(ratios), atTarget, len(ratios), targetQuotaShare,
		r.w.limit.Window, slices.Max(r.most), r.w.limit.Count, r.w.saturated*r.w.backlog(), r.published.Round(time.Millisecond), r.intake.Round(time.Millisecond))
	if slices.Contains(r.drained, 0) {
		fmt.Fprintf(w, "%d of %d backlogs were not drained within %v of their publish.\n\n", countZero(r.drained), len(r.drained), r.busy.timeout)
	} else {
		fmt.Fprintf(w, "Each backlog drained (its tenant's last call) %.1f s after its publish, median (slowest %.1f s); at exactly the quota it takes (%d / %d − 1) × %v = %.0f s.\n\n",
			median(r.drained).Seconds(), slices.Max(r.drained).Seconds(), r.w.backlog(), r.w.limit.Count, r.w.limit.Window, r.w.idealDrain().Seconds())
	}
	fmt.Fprintf(w, "| target | measured | |\n|---|---:|---|\n")
	fmt.Fprintf(w, "| every saturated tenant uses ≥ %.1f of its own quota | lowest %.2f, median %.2f | %s |\n",
		targetQuotaShare, slices.Min(ratios), median(ratios), met(slices.Min(ratios) >= targetQuotaShare))
	p99 := r.busy.percentile(0.99)
	fmt.Fprintf(w, "| p99 latency of the tenant with quota to spare < %v while %d are saturated | %.1f ms (alone %.1f ms) | %s |\n",
		targetTrickleP99, r.w.saturated, ms(p99), ms(r.alone.percentile(0.99)), met(p99 < targetTrickleP99 && r.busy.missing == 0))
}

func countZero(ds []time.Duration) int {
	n := 0
	for _, d := range ds {
		if d == 0 {
			n++
		}
	}
	return n
}

// The generated part of BENCHMARKS.md's "50 tenants" section lies between
// these lines; BenchmarkTenants with -bench.write replaces it.
const (
	tenantsBegin = "<!-- Written by BenchmarkTenants with -bench.write; what is outside these two lines is kept. -->"
	tenantsEnd   = "<!-- End of BenchmarkTenants' figures. -->"
)

// writeTenantsSection replaces the figures between tenantsBegin and
// tenantsEnd in the file at path.
func writeTenantsSection(path string, figures []byte) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	before, rest, ok := bytes.Cut(old, []byte(tenantsBegin))
	_, after, ok2 := bytes.Cut(rest, []byte(tenantsEnd))
	if !ok || !ok2 {
		return fmt.Errorf("the lines %q and %q are not both there", tenantsBegin, tenantsEnd)
	}
	var out bytes.Buffer
	out.Write(before)
	out.WriteString(tenantsBegin + "\n\n")
	out.Write(bytes.TrimSpace(figures))
	out.WriteString("\n\n" + tenantsEnd)
	out.Write(after)
	return os.WriteFile(path, out.Bytes(), 0o644)
}
