package tests

// End-to-end tests of the operations surface: replay, tail,
// /readyz, /metrics, the result cache and the max-deliveries safety net,
// with the real binary, a real nats-server and the emulator.

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

const knownAlert = "da637472900382838869_1364969609"

// opsCommand runs a client command of the binary to its end and returns its
// exit status and output.
func opsCommand(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	return testenv.Run(t, testenv.BuildBinary(t), env, time.Minute, args...)
}

// lastRequestSeq is the last sequence of the request stream.
func lastRequestSeq(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), requestStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// httpEndpoint is where the service under test serves HTTP.
func httpEndpoint(t *testing.T) (listen, base string) {
	t.Helper()
	listen = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	return listen, "http://" + listen
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// scrapeMetrics reads /metrics: each series (name and labels as printed)
// with its value.
func scrapeMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	code, body, err := httpGet(base + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	series := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

// TestReplay: a failure of kind unavailable (Defender down) is replayed once
// Defender is back and ends in a success; a dry run before publishes
// nothing; a second run after is idempotent.
func TestReplay(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	env := serviceEnv(emu, cert, natsURL)
	testenv.StartServe(t, env)

	emu.SetOutage(http.StatusServiceUnavailable)
	seq := publish(t, js, knownAlert, nil)
	first := waitResults(t, js, 1, 30*time.Second)[seq]
	if first.Status != message.StatusFailure || first.Error.Kind != message.KindUnavailable {
		t.Fatalf("result %s, want an unavailable failure", first.Raw)
	}
	emu.SetOutage(0)

	t.Run("dry run publishes nothing", func(t *testing.T) {
		before, calls := lastRequestSeq(t, js), emu.Calls()
		code, out := opsCommand(t, env, "replay", "--failed", "--kind", "unavailable", "--dry-run")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if !strings.Contains(out, "would republish") || !strings.Contains(out, "nothing was published") {
			t.Errorf("output:\n%s", out)
		}
		if after := lastRequestSeq(t, js); after != before {
			t.Errorf("dry run stored %d requests", after-before)
		}
		if n := len(results(t, js)); n != 1 || emu.Calls() != calls {
			t.Errorf("dry run led to %d results and %d Defender calls", n-1, emu.Calls()-calls)
		}
	})

	t.Run("replay ends in a success", func(t *testing.T) {
		code, out := opsCommand(t, env, "replay", "--failed", "--kind", "unavailable")
		if code != 0 || !strings.Contains(out, "republished 1, skipped 0") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		rs := waitResults(t, js, 2, 30*time.Second)
		var replayed *storedResult
		for s, r := range rs {
			if s != seq {
				replayed = &r
			}
		}
		if replayed == nil || replayed.Status != message.StatusSuccess || replayed.ReplayOf != seq || replayed.AlertID != knownAlert {
			t.Fatalf("results %s, want a success of the replay of %d", kinds(rs), seq)
		}
	})

	// Idempotent: the second run finds the same failure, sees that its alert
	// has a success result stored after it, and republishes nothing, so no
	// new request, no Defender call and no new result.
	t.Run("second run republishes nothing", func(t *testing.T) {
		before, calls := lastRequestSeq(t, js), emu.Calls()
		code, out := opsCommand(t, env, "replay", "--failed", "--kind", "unavailable")
		if code != 0 || !strings.Contains(out, "republished 0, skipped 1 (1 succeeded since it failed)") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if after := lastRequestSeq(t, js); after != before {
			t.Errorf("second run stored %d requests", after-before)
		}
		if n := len(results(t, js)); n != 2 || emu.Calls() != calls {
			t.Errorf("second run led to %d results and %d Defender calls", n-2, emu.Calls()-calls)
		}
	})
}

// TestTailJSON: tail --json prints the results stored after it started, as
// stored, and exits 0 on Ctrl-C.
func TestTailJSON(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	env := serviceEnv(emu, cert, natsURL)
	testenv.StartServe(t, env)
	old := publish(t, js, "636688558380765161_2136280442", nil)
	waitResults(t, js, 1, 30*time.Second)

	tail := testenv.StartService(t, testenv.BuildBinary(t), env, "tail", "--json")
	tail.WaitForLine(t, "following results", 30*time.Second)
	s1 := publish(t, js, knownAlert, nil)
	s2 := publish(t, js, "../machines", nil)
	waitResults(t, js, 3, 30*time.Second)
	for _, s := range []uint64{s1, s2} {
		tail.WaitForLine(t, fmt.Sprintf(`"requestSequence":%d,`, s), 30*time.Second)
	}
	if err := tail.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code, err := tail.Wait(30 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("tail exit %d (%v) on Ctrl-C, want 0", code, err)
	}
	var printed []string
	for line := range strings.SplitSeq(tail.Output(), "\n") {
		if strings.HasPrefix(line, "{") && strings.Contains(line, `"requestSequence"`) {
			printed = append(printed, line)
		}
	}
	// In the order the result stream stored them.
	var want []string
	for _, r := range results(t, js) {
		if r.RequestSequence == s1 || r.RequestSequence == s2 {
			want = append(want, r.Raw)
		}
	}
	if len(printed) != 2 || printed[0] != want[0] || printed[1] != want[1] {
		t.Errorf("tail printed:\n%s\nwant the two new results as stored:\n%s", strings.Join(printed, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(tail.Output(), fmt.Sprintf(`"requestSequence":%d,`, old)) {
		t.Error("tail printed a result stored before it started")
	}
}

// TestReadyzFollowsNATS: /readyz answers 503 with the reason while the NATS
// server is down and 200 once it is back; /livez answers 200 throughout.
func TestReadyzFollowsNATS(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	srv := testenv.StartNATS(t)
	listen, base := httpEndpoint(t)
	testenv.StartServe(t, serviceEnv(emu, cert, srv.URL(), "HTTP_LISTEN="+listen))

	waitStatus := func(path string, want int, contains string) {
		t.Helper()
		var code int
		var body string
		testenv.Eventually(t, 45*time.Second, 50*time.Millisecond, func() bool {
			code, body, _ = httpGet(base + path)
			return code == want && strings.Contains(body, contains)
		}, "GET %s answers %d (last: %d %q)", path, want, code, body)
	}
	waitStatus("/readyz", http.StatusOK, "ready")
	srv.Stop(t)
	waitStatus("/readyz", http.StatusServiceUnavailable, "not ready")
	waitStatus("/livez", http.StatusOK, "ok")
	srv.Restart(t)
	waitStatus("/readyz", http.StatusOK, "ready")
}

// TestMetricsCountKnownWorkload: /metrics counters move by exactly the
// workload's amounts.
func TestMetricsCountKnownWorkload(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	listen, base := httpEndpoint(t)
	testenv.StartServe(t, serviceEnv(emu, cert, natsURL, "HTTP_LISTEN="+listen, "CACHE_TTL=1h", "DEFENDER_RATE_LIMITS=100/1m"))
	before := scrapeMetrics(t, base)

	// Two known alerts and one Defender does not know: three calls; an
	// invalid ID: none; then a known alert again, from the cache.
	publish(t, js, knownAlert, nil)
	publish(t, js, "da637200417169017725_183736971", nil)
	publish(t, js, "da000000000000000000_1", nil)
	publish(t, js, "../machines", nil)
	waitResults(t, js, 4, 30*time.Second)
	publish(t, js, knownAlert, nil)
	waitResults(t, js, 5, 30*time.Second)

	want := map[string]float64{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="default"}`:          3,
		`alert_domains_results_total{api="graph",kind="not_found",status="failure",tenant="default"}`: 1,
		`alert_domains_results_total{api="",kind="invalid_request",status="failure",tenant=""}`:       1,
		`alert_domains_deliveries_total{action="ack"}`:                                                4,
		`alert_domains_deliveries_total{action="terminate"}`:                                          1,
		`alert_domains_defender_calls_total{api="graph",code="200",tenant="default"}`:                 2,
		`alert_domains_defender_calls_total{api="graph",code="404",tenant="default"}`:                 1,
		`alert_domains_defender_call_duration_seconds_count`:                                          3,
		`alert_domains_quota_wait_seconds_count{tenant="default"}`:                                    3,
		`alert_domains_request_attempts_count`:                                                        5,
		`alert_domains_request_attempts_sum`:                                                          3,
		`alert_domains_request_attempts_bucket{le="0"}`:                                               2,
		`alert_domains_cache_hits_total`:                                                              1,
		`alert_domains_cache_misses_total`:                                                            3,
		`alert_domains_quota_used_calls{tenant="default",window="1m"}`:                                3,
	}
	var after map[string]float64
	moved := func() bool {
		after = scrapeMetrics(t, base)
		for k, v := range want {
			if after[k]-before[k] != v {
				return false
			}
		}
		return after["alert_domains_requests_in_flight"] == 0
	}
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, moved, "metrics move by the workload")
	if got := after[`alert_domains_quota_limit_calls{tenant="default",window="1m"}`]; got != 100 {
		t.Errorf("quota limit %v, want 100", got)
	}
	if calls := emu.Calls(); float64(calls) != after[`alert_domains_defender_calls_total{api="graph",code="200",tenant="default"}`]+after[`alert_domains_defender_calls_total{api="graph",code="404",tenant="default"}`] {
		t.Errorf("emulator saw %d calls, metrics count otherwise", calls)
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	for series := range after {
		if strings.Contains(series, knownAlert) {
			t.Errorf("an alert ID is a label: %s", series)
		}
	}
}

// TestCacheTenRequestsOneCall: ten requests for the same alert within
// CACHE_TTL make exactly one Defender call. The first request fills the
// cache; the nine after it (sent at once) are answered from it.
func TestCacheTenRequestsOneCall(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	testenv.StartServe(t, serviceEnv(emu, cert, natsURL, "CACHE_TTL=1h"))

	first := publish(t, js, knownAlert, nil)
	waitResults(t, js, 1, 30*time.Second)
	// Acknowledged: handled to the end, its answer cached. A result on the
	// stream can be seen before the service has read its acknowledgement.
	requestsAllAcked(t, js, 30*time.Second)
	for range 9 {
		publish(t, js, fmt.Sprintf(`{"alertId":%q}`, knownAlert), nil)
	}
	rs := waitResults(t, js, 10, 30*time.Second)
	if n := emu.CallsFor(knownAlert); n != 1 {
		t.Errorf("%d Defender calls for %s, want 1", n, knownAlert)
	}
	for seq, r := range rs {
		cached := r.Cached != nil && *r.Cached
		if r.Status != message.StatusSuccess || strings.Join(r.Domains, ",") != "www.example.com,cdn.example.net" {
			t.Errorf("request %d: %s", seq, r.Raw)
		}
		if seq == first && (cached || r.Attempts != 1) {
			t.Errorf("first request: cached %v attempts %d, want a call", cached, r.Attempts)
		}
		if seq != first && (!cached || r.Attempts != 0) {
			t.Errorf("request %d: cached %v attempts %d, want from the cache", seq, cached, r.Attempts)
		}
	}
}

// TestCacheOutlivesTheReplicaThatFilledIt: the cache is the stored success
// results, so a replica started after the one that asked Defender (a
// restart, or another replica) answers the alert from it; a success that
// was itself answered from the cache does not make the entry younger, and a
// failure is never an answer.
func TestCacheOutlivesTheReplicaThatFilledIt(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	env := serviceEnv(emu, cert, natsURL, "CACHE_TTL=1h")

	a := testenv.StartServe(t, env)
	publish(t, js, knownAlert, nil)
	publish(t, js, unknownAlert, nil)
	waitResults(t, js, 2, 30*time.Second)
	a.Stop(t)

	b := testenv.StartServe(t, env)
	again := publish(t, js, knownAlert, nil)
	missing := publish(t, js, unknownAlert, nil)
	rs := waitResults(t, js, 4, 30*time.Second)
	b.Stop(t)
	if r := rs[again]; r.Status != message.StatusSuccess || r.Cached == nil || !*r.Cached || r.Attempts != 0 ||
		strings.Join(r.Domains, ",") != "www.example.com,cdn.example.net" {
		t.Errorf("the alert again, on a replica started after the first: %s, want the cached success", r.Raw)
	}
	if n := emu.CallsFor(knownAlert); n != 1 {
		t.Errorf("%d Defender calls for %s, want 1", n, knownAlert)
	}
	if r := rs[missing]; r.Status != message.StatusFailure || r.Attempts == 0 {
		t.Errorf("the unknown alert again: %s, want a failure after a call", r.Raw)
	}
	if n := emu.CallsFor(unknownAlert); n != 2 {
		t.Errorf("%d Defender calls for %s, want 2 (failures are not cached)", n, unknownAlert)
	}
}

// TestAdvisoryWithoutResultProducesOneFailure: a request whose deliveries
// all ended without a result (two replicas that crashed with it) gets
// exactly one failure result, from the safety net of the next service to
// run, and never reaches Defender.
func TestAdvisoryWithoutResultProducesOneFailure(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	env := serviceEnv(emu, cert, natsURL, "MAX_DELIVER=2", "ACK_WAIT=1s")
	vars := make(map[string]string)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	seq := publish(t, js, fmt.Sprintf(`{"alertId":%q,"correlationId":"siem-7"}`, knownAlert), nil)
	cons, err := js.Consumer(t.Context(), requestStream, consumerName)
	if err != nil {
		t.Fatal(err)
	}
	for delivery := 1; delivery <= 2; delivery++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("delivery %d: %v", delivery, err)
		}
		meta, err := msg.Metadata()
		if err != nil || meta.Sequence.Stream != seq || meta.NumDelivered != uint64(delivery) {
			t.Fatalf("delivery %d: %+v %v", delivery, meta, err)
		}
		// Crash: no result, no acknowledgement; the ack wait runs out.
	}
	// The next service to pull finds the delivery limit reached: the server
	// publishes its max-deliveries advisory, and the safety net answers it.
	testenv.StartServe(t, env)
	rs := waitResults(t, js, 1, 30*time.Second)
	r := rs[seq]
	if r.Status != message.StatusFailure || r.Error.Kind != message.KindUnavailable || !strings.Contains(r.Error.Message, "delivery limit reached") {
		t.Fatalf("result %s, want an unavailable failure: delivery limit reached", r.Raw)
	}
	if r.AlertID != knownAlert || r.CorrelationID != "siem-7" || r.Request == nil || r.Subject != failureSubject {
		t.Errorf("result %s does not name its request", r.Raw)
	}
	if got, want := r.Header.Get(message.HeaderMsgID), message.ResultMsgID(requestStream, seq, storedAt(t, js, seq)); got != want {
		t.Errorf("Nats-Msg-Id %q, want %q", got, want)
	}
	testenv.Eventually(t, 15*time.Second, 50*time.Millisecond, func() bool {
		c, err := js.Consumer(t.Context(), requestStream, topo.Advisories.Durable)
		if err != nil {
			return false
		}
		info := c.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream > 0
	}, "the advisory is acknowledged")
	if all := results(t, js); len(all) != 1 {
		raws := make([]string, len(all))
		for i, x := range all {
			raws[i] = x.Raw
		}
		t.Fatalf("%d results, want exactly one:\n%s", len(all), strings.Join(raws, "\n"))
	}
	if emu.CallsFor(knownAlert) != 0 {
		t.Errorf("the exhausted request reached Defender")
	}
}
