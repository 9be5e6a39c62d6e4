package tests

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/quota"
)

// quotaReplicas starts n serve replicas on the same NATS and consumer.
func quotaReplicas(t *testing.T, emu *recordingEmulator, natsURL string, n int, extra ...string) []*testenv.Process {
	t.Helper()
	ps := make([]*testenv.Process, n)
	for i := range ps {
		ps[i] = testenv.StartServe(t, emu.env(natsURL, append([]string{"LOG_LEVEL=info", "RETRY_MAX_ELAPSED=2m"}, extra...)...))
	}
	return ps
}

// callTimes are the arrival times of the recorded Defender calls, sorted.
func callTimes(emu *recordingEmulator) []time.Time {
	var times []time.Time
	for _, c := range emu.Recorded() {
		times = append(times, c.At)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	return times
}

// allSucceeded checks that each request of seqs has a success result for
// its alert.
func allSucceeded(t *testing.T, got map[uint64]storedResult, seqs []uint64, alerts []string) {
	t.Helper()
	for i, seq := range seqs {
		if r := got[seq]; r.Status != "success" || r.AlertID != alerts[i] {
			t.Fatalf("request %d (%s): %s, want a success; by kind: %s", seq, alerts[i], r.Raw, kinds(got))
		}
	}
}

// quiet watches the emulator for d and returns the calls that arrived.
func quiet(emu *recordingEmulator, d time.Duration) int {
	before := len(emu.Recorded())
	<-time.After(d) // an observation period: that nothing happens is the point
	return len(emu.Recorded()) - before
}

// TestSharedQuotaThreeReplicas: three replicas with DEFENDER_RATE_LIMITS
// 15/2s never make more than 15 calls in any 2s together, and a backlog of
// 90 requests drains at the quota's rate: within 1.5 × (90/15 − 1) × 2s.
func TestSharedQuotaThreeReplicas(t *testing.T) {
	t.Parallel()
	const n = 90
	limit := connector.Limit{Count: 15, Window: 2 * time.Second}
	emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	quotaReplicas(t, emu, srv.URL(), 3, "DEFENDER_RATE_LIMITS=15/2s")

	ids := alertIDs("shared", n)
	start := time.Now()
	seqs := publishAll(t, js, ids)
	got := waitResults(t, js, n, 2*time.Minute)
	elapsed := time.Since(start)
	allSucceeded(t, got, seqs, ids)
	times := callTimes(emu)
	if len(times) != n {
		t.Errorf("%d Defender calls for %d requests", len(times), n)
	}
	if most, at := maxInWindow(times, limit.Window); most > limit.Count {
		t.Errorf("%d calls in the %v from %v, limit %d for all replicas", most, limit.Window, at.Format("15:04:05.000"), limit.Count)
	}
	ideal := time.Duration(n/limit.Count-1) * limit.Window
	if elapsed > ideal*3/2 {
		t.Errorf("%d requests took %v, want at most 1.5 × %v", n, elapsed, ideal)
	}
	t.Logf("%d requests in %v (ideal %v)", n, elapsed, ideal)
}

// TestSharedCooldownStopsEveryReplica: Defender answers one call with 429
// and Retry-After: 3; no replica's call reaches it from 500ms after that
// answer until the 3 seconds have passed, and every request still succeeds.
//
// Not parallel: the 500ms allowed for calls already on their way when the
// 429 was answered holds on an otherwise quiet machine only, so it runs
// before the parallel tests start.
func TestSharedCooldownStopsEveryReplica(t *testing.T) {
	const n = 60
	emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	quotaReplicas(t, emu, srv.URL(), 3, "DEFENDER_RATE_LIMITS=20/1s")

	const throttled = "storm_throttled"
	emu.Script(throttled, emulator.Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3"}}})
	ids := append(alertIDs("storm", 10), throttled)
	ids = append(ids, alertIDs("after", n-11)...)
	seqs := publishAll(t, js, ids)
	got := waitResults(t, js, n, 2*time.Minute)
	allSucceeded(t, got, seqs, ids)

	var at time.Time
	var retryAfter time.Duration
	for _, c := range emu.Recorded() {
		if c.Status == http.StatusTooManyRequests {
			at, retryAfter = c.At, c.RetryAfter
		}
	}
	if at.IsZero() || retryAfter != 3*time.Second {
		t.Fatalf("no 429 with Retry-After 3s was answered (%v)", retryAfter)
	}
	var during []string
	for _, c := range emu.Recorded() {
		if c.At.After(at.Add(500*time.Millisecond)) && c.At.Before(at.Add(retryAfter)) {
			during = append(during, fmt.Sprintf("%s %s", c.At.Format("15:04:05.000"), c.Alert))
		}
	}
	if len(during) > 0 {
		t.Errorf("429 at %s with Retry-After %v, yet %d calls reached Defender before it passed: %v",
			at.Format("15:04:05.000"), retryAfter, len(during), during)
	}
}

// TestSharedQuotaUnreachable: while NATS (and with it the quota state) is
// down, no Defender call starts and no request fails; calls resume when it
// is back, and every request ends in a success.
func TestSharedQuotaUnreachable(t *testing.T) {
	t.Parallel()
	const n = 40
	emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	quotaReplicas(t, emu, srv.URL(), 2, "DEFENDER_RATE_LIMITS=5/1s")

	ids := alertIDs("outage", n)
	seqs := publishAll(t, js, ids)
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return len(emu.Recorded()) >= 10 }, "10 calls")
	srv.Stop(t)
	// Calls granted before the stop may still arrive; then nothing.
	_ = quiet(emu, 500*time.Millisecond)
	if calls := quiet(emu, 3*time.Second); calls != 0 {
		t.Errorf("%d Defender calls while the quota state was unreachable", calls)
	}
	srv.Restart(t)
	got := waitResults(t, js, n, 2*time.Minute)
	allSucceeded(t, got, seqs, ids)
}

// TestQuotaSurvivesRestart: a replica that used its window and is
// restarted (SIGTERM, or kill -9, then start) does not get a fresh window:
// Defender never sees more than the limit in any window, in either
// QUOTA_SCOPE.
func TestQuotaSurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scope string
		kill  bool
	}{{"shared", false}, {"process", false}, {"shared", true}} {
		scope := tc.scope
		name := scope
		if tc.kill {
			name += "-kill-9"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const n = 25
			limit := connector.Limit{Count: 10, Window: 6 * time.Second}
			emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
			srv := testenv.StartNATS(t)
			js := srv.JetStream(t)
			env := emu.env(srv.URL(), "DEFENDER_RATE_LIMITS=10/6s", "QUOTA_SCOPE="+scope, "DEFENDER_TIMEOUT=2s", "SHUTDOWN_TIMEOUT=1s", "ACK_WAIT=3s", "LOG_LEVEL=info", "RETRY_MAX_ELAPSED=2m")
			p := testenv.StartServe(t, env)
			ids := alertIDs("restart", n)
			seqs := publishAll(t, js, ids)
			waitResultCount(t, js, limit.Count, 30*time.Second)
			if tc.kill {
				if err := p.Kill(); err != nil {
					t.Fatal(err)
				}
				if _, err := p.Wait(30 * time.Second); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := p.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
				if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
					t.Fatalf("exit status %d (%v)", code, err)
				}
			}
			testenv.StartServe(t, env)
			got := waitResults(t, js, n, 2*time.Minute)
			allSucceeded(t, got, seqs, ids)
			if most, at := maxInWindow(callTimes(emu), limit.Window); most > limit.Count {
				t.Errorf("%d calls in the %v from %v across a restart, limit %d", most, limit.Window, at.Format("15:04:05.000"), limit.Count)
			}
		})
	}
}

// TestSharedQuotaStreamLeaderLoss: on a three-node cluster with
// STREAM_REPLICAS=3, the node that leads the shared quota's stream is
// killed with SIGKILL while requests wait for the quota. No window holds
// more calls than the limit, no request fails, and calls go on once the
// stream has a new leader: every request ends in a success.
func TestSharedQuotaStreamLeaderLoss(t *testing.T) {
	t.Parallel()
	const n = 40
	limit := connector.Limit{Count: 5, Window: time.Second}
	emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
	cluster := testenv.StartNATSCluster(t, 3)
	js := cluster.JetStream(t)
	procs := quotaReplicas(t, emu, cluster.URLs(), 2, "DEFENDER_RATE_LIMITS=5/1s", "STREAM_REPLICAS=3")
	defer func() {
		if !t.Failed() {
			return
		}
		for _, p := range procs {
			for _, l := range strings.Split(p.Output(), "\n") {
				if strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") || strings.Contains(l, "quota") {
					t.Log(l)
				}
			}
		}
	}()

	qs := quota.NewLayout(consumerName, []connector.Limit{limit}).Stream(limit)
	cluster.WaitStreamCurrent(t, js, qs, 30*time.Second)
	ids := alertIDs("leaderloss", n)
	seqs := publishAll(t, js, ids)
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return len(emu.Recorded()) >= 10 }, "10 calls")
	leader := cluster.StreamLeader(t, js, qs, 10*time.Second)
	leader.Kill(t)
	killedAt := time.Now()
	before := len(emu.Recorded())
	if before >= n {
		t.Fatalf("all %d calls made before %s was killed; the test proves nothing", before, leader.Name())
	}
	t.Logf("killed %s, the leader of %s, after %d calls", leader.Name(), qs, before)

	// The test's own connection may have been on the killed node.
	waitResultCount(t, js, n, 2*time.Minute)
	got := waitResults(t, js, n, time.Minute)
	allSucceeded(t, got, seqs, ids)
	times := callTimes(emu)
	if len(times) != n {
		t.Errorf("%d Defender calls for %d requests", len(times), n)
	}
	if most, at := maxInWindow(times, limit.Window); most > limit.Count {
		t.Errorf("%d calls in the %v from %v, limit %d for all replicas", most, limit.Window, at.Format("15:04:05.000"), limit.Count)
	}
	after, resumed := 0, time.Duration(0)
	for _, at := range times {
		if at.After(killedAt) {
			if after++; after == 1 {
				resumed = at.Sub(killedAt)
			}
		}
	}
	// A new leader is elected within seconds; the slots taken before the
	// kill must not hold calls back until they expire (the hold,
	// DEFENDER_TIMEOUT, 30s by default).
	if resumed > 20*time.Second {
		t.Errorf("calls resumed %v after the kill, want within 20s", resumed.Round(time.Millisecond))
	}
	if now := cluster.StreamLeader(t, js, qs, 10*time.Second); now.Name() == leader.Name() {
		t.Errorf("%s is still led by the killed %s", qs, leader.Name())
	} else {
		t.Logf("%d calls after the kill, the first %v and the last %v after it; %s now led by %s",
			after, resumed.Round(time.Millisecond), times[len(times)-1].Sub(killedAt).Round(time.Millisecond), qs, now.Name())
	}
}

// TestSharedQuotaTenantsOwnCounts: with QUOTA_SCOPE=shared, two tenants
// whose rateLimits give one window different counts, 2/2s and 5/2s, are
// both served by one replica, each held to its own count: neither's
// Defender sees more than its count in any 2 s, the larger one uses its 5,
// both backlogs drain at their own rate, and status shows each tenant's use
// against its own limit.
func TestSharedQuotaTenantsOwnCounts(t *testing.T) {
	t.Parallel()
	window := 2 * time.Second
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{AnyAlert: true})
	contoso.rateLimits = "2/2s"
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{AnyAlert: true})
	fabrikam.rateLimits = "5/2s"
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam},
		"QUOTA_SCOPE=shared", "LOG_LEVEL=info", "RETRY_MAX_ELAPSED=2m")
	svc := testenv.StartServe(t, env)

	backlog := map[string]int{"contoso": 8, "fabrikam": 20} // 3 windows beyond the first each
	start := time.Now()
	for name, n := range backlog {
		for _, id := range alertIDs(name, n) {
			publishTo(t, js, requestSubject+"."+name, id)
		}
	}
	got := waitResults(t, js, backlog["contoso"]+backlog["fabrikam"], 2*time.Minute)
	elapsed := time.Since(start)
	rs := make([]storedResult, 0, len(got))
	for _, r := range got {
		rs = append(rs, r)
	}
	for _, c := range []struct {
		te    tenantEmulator
		count int
	}{{contoso, 2}, {fabrikam, 5}} {
		name, n := c.te.name, backlog[c.te.name]
		if ok, failed, kinds := tenantResults(t, rs, name); ok != n || failed != 0 {
			t.Errorf("%s: %d successes and %d failures (%v), want %d successes", name, ok, failed, kinds, n)
		}
		times := c.te.emu.CallTimes()
		if len(times) != n {
			t.Errorf("%s's Defender saw %d calls for %d requests", name, len(times), n)
		}
		most, at := maxInWindow(times, window)
		if most > c.count {
			t.Errorf("%s's Defender saw %d calls in the %v from %v, its rateLimits %d/2s", name, most, window, at.Format("15:04:05.000"), c.count)
		}
		if most < c.count {
			t.Errorf("%s's Defender saw at most %d calls in any %v: its own %d/2s was not used", name, most, window, c.count)
		}
	}
	// Each backlog is n/count windows' worth: the last window starts
	// (n/count − 1) windows after the first.
	ideal := time.Duration(backlog["contoso"]/2-1) * window
	if elapsed > ideal*3/2+window {
		t.Errorf("the backlogs took %v to drain, want within 1.5 × %v and a window", elapsed.Round(time.Millisecond), ideal)
	}
	t.Logf("both backlogs drained in %v (ideal %v)", elapsed.Round(time.Millisecond), ideal)

	code, out := opsCommand(t, env, "status")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for name, limit := range map[string]string{"contoso": "/2 per 2s", "fabrikam": "/5 per 2s"} {
		found := false
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name {
				found = found || strings.HasSuffix(strings.TrimSpace(line), limit)
			}
		}
		if !found {
			t.Errorf("status has no line for %s ending in %q:\n%s", name, limit, out)
		}
	}
	svc.Stop(t)
}

// stateString formats, when a failure message is printed, what the test
// sees then.
type stateString func() string

func (s stateString) String() string { return s() }

// TestProcessCooldownHoldsEveryRequest: with QUOTA_SCOPE=process, a 429
// with Retry-After pauses every Defender call of the process until the time
// it names, not only that request's retry.
func TestProcessCooldownHoldsEveryRequest(t *testing.T) {
	t.Parallel()
	const throttledAnswers = 3 // each alert's calls answered 429 at least this often
	hour := emulator.Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}}}

	// Every call is answered 429 with Retry-After: 3600. The first request
	// gets the one call: its Retry-After is beyond the retry budget, so it
	// ends throttled at once. It is published alone because a call that
	// started before the 429 came back cannot be held back by it. The 29
	// published after its result, more than CONCURRENCY, are all taken and
	// all wait; none reaches Defender and none fails.
	t.Run("retry-after-3600", func(t *testing.T) {
		t.Parallel()
		const n = 30
		emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
		ids := alertIDs("hour", n)
		for _, id := range ids {
			for range throttledAnswers {
				emu.Script(id, hour)
			}
		}
		srv := testenv.StartNATS(t)
		js := srv.JetStream(t)
		listen, base := httpEndpoint(t)
		testenv.StartServe(t, emu.env(srv.URL(), "QUOTA_SCOPE=process", "DEFENDER_RATE_LIMITS=100/1m",
			"RETRY_MAX_ELAPSED=10m", "CONCURRENCY=16", "HTTP_LISTEN="+listen, "LOG_LEVEL=info"))

		first := publish(t, js, ids[0], nil)
		r := waitResults(t, js, 1, 30*time.Second)[first]
		if r.Status != "failure" || r.Error == nil || r.Error.Kind != message.KindThrottled {
			t.Fatalf("request %d: %s, want a throttled failure (Retry-After beyond the retry budget)", first, r.Raw)
		}
		if calls := len(emu.Recorded()); calls != 1 {
			t.Fatalf("%d Defender calls for the first request, want 1", calls)
		}

		publishAll(t, js, ids[1:])
		held := n - 1
		var pending uint64
		var ackPending int
		var inFlight float64
		state := stateString(func() string {
			return fmt.Sprintf("%d Defender calls, %d results, consumer: %d pending, %d unacknowledged, %v requests in flight",
				len(emu.Recorded()), resultCount(t, js), pending, ackPending, inFlight)
		})
		testenv.Eventually(t, 15*time.Second, 20*time.Millisecond, func() bool {
			c, err := js.Consumer(t.Context(), requestStream, consumerName)
			if err != nil {
				return false
			}
			info := c.CachedInfo()
			pending, ackPending = info.NumPending, info.NumAckPending
			inFlight = scrapeMetrics(t, base)["alert_domains_requests_in_flight"]
			return pending == 0 && ackPending == held && inFlight == float64(held)
		}, "all %d requests taken and waiting: %v", held, state)
		if calls := len(emu.Recorded()); calls != 1 {
			t.Fatalf("%d requests held after a 429 with Retry-After: 3600, yet Defender saw %d calls, want 1", held, calls)
		}
		if calls := quiet(emu, time.Second); calls != 0 {
			t.Errorf("%d Defender calls within a second while the 429's hour ran", calls)
		}
		if got := resultCount(t, js); got != 1 {
			t.Errorf("%d results, want only the first request's: %v", got, state)
		}
	})

	// The first request is answered 429 with Retry-After: 2, every later
	// call 200. The requests published once that 429 has been answered
	// (the recorder notes it once the answer is written; the service reads it
	// long before the next publish reaches a worker) make no call before
	// the 2 seconds have passed; then all of them, and the first one's
	// retry, succeed: N+1 calls.
	t.Run("retry-after-2", func(t *testing.T) {
		t.Parallel()
		const n = 20
		retryAfter := 2 * time.Second
		emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true})
		ids := alertIDs("short", n)
		emu.Script(ids[0], emulator.Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"2"}}})
		srv := testenv.StartNATS(t)
		js := srv.JetStream(t)
		// One worker: the next request's call can start only once the
		// first one's worker has let go of it, after its 429 was read
		// (its wait parks, and another worker is started then), so no
		// call can slip in between the 429 and the cooldown it sets.
		testenv.StartServe(t, emu.env(srv.URL(), "QUOTA_SCOPE=process", "DEFENDER_RATE_LIMITS=100/1m",
			"RETRY_MAX_ELAPSED=1m", "CONCURRENCY=1", "LOG_LEVEL=info"))

		seqs := publishAll(t, js, ids)
		got := waitResults(t, js, n, 30*time.Second)
		throttled := emu.Recorded()[0]
		if throttled.Alert != ids[0] || throttled.Status != http.StatusTooManyRequests || throttled.RetryAfter != retryAfter {
			t.Fatalf("the first call was for %s, answered %d (Retry-After %v), want %s answered 429 with %v",
				throttled.Alert, throttled.Status, throttled.RetryAfter, ids[0], retryAfter)
		}
		allSucceeded(t, got, seqs, ids)
		calls := emu.Recorded()
		if len(calls) != n+1 {
			t.Errorf("%d Defender calls for %d requests and one 429, want %d", len(calls), n, n+1)
		}
		var early []string
		for _, c := range calls[1:] {
			if c.At.Before(throttled.At.Add(retryAfter)) {
				early = append(early, fmt.Sprintf("%s %s +%v", c.At.Format("15:04:05.000"), c.Alert, c.At.Sub(throttled.At).Round(time.Millisecond)))
			}
		}
		if len(early) > 0 {
			t.Errorf("429 at %s with Retry-After %v, yet %d calls came before it passed: %v",
				throttled.At.Format("15:04:05.000"), retryAfter, len(early), early)
		}
	})
}
