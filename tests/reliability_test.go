package tests

// Reliability tests with the real binary, a real nats-server
// process and the Defender emulator: crashes, a broker restart, a Defender
// outage, throttling, slow and hostile answers, and secrets. Their sizes
// are scaled to keep the file at a few minutes on two cores under -race;
// ALERT_DOMAINS_SOAK=1 (without -short) runs the long variants.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// soak reports whether the long variants run.
func soak() bool { return !testing.Short() && os.Getenv("ALERT_DOMAINS_SOAK") == "1" }

// knownAlerts are n alert IDs with their hosts (1 to 3 each).
func knownAlerts(prefix string, n int) (ids []string, hosts map[string][]string) {
	hosts = make(map[string][]string, n)
	for i := range n {
		id := fmt.Sprintf("%s_%05d", prefix, i)
		h := []string{fmt.Sprintf("h%05d.%s.example.com", i, prefix)}
		for k := range i % 3 {
			h = append(h, fmt.Sprintf("h%05d-%d.%s.example.net", i, k, prefix))
		}
		ids, hosts[id] = append(ids, id), h
	}
	return ids, hosts
}

func stillRunning(t *testing.T, p *testenv.Process) {
	t.Helper()
	select {
	case <-p.Done():
		t.Fatalf("the service exited:\n%s", p.Output())
	default:
	}
}

// TestCrashKill9: 500 requests, Defender answering in 20 ms,
// a result hook of 50 ms that widens the window between a stored result and
// its acknowledgement, the service killed with SIGKILL three times during
// the run and started again: every request ends with exactly one result,
// each the right one, and the kills are shown to have landed in that window
// (requests redelivered after their result was stored, whose hook ran again
// with the stored result). Most of the eight requests in hand
// (CONCURRENCY=8) are in that window at any time, so a kill lands in it
// however many requests there are; 500 leave time for three kills and
// restarts.
func TestCrashKill9(t *testing.T) {
	t.Parallel()
	n, kills := 500, 3
	if soak() {
		n, kills = 10000, 10
	}
	ids, hosts := knownAlerts("crash", n)
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: hosts, Latency: 20 * time.Millisecond})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	script, log := hookScript(t)
	env := serviceEnv(emu, cert, srv.URL(), "ACK_WAIT=2s", "CONCURRENCY=8", "LOG_LEVEL=info",
		"ON_SUCCESS_EXEC=/bin/sh "+script, "HOOK_SLEEP=0.05", "HOOK_ENV=HOOK_SLEEP")
	p := testenv.StartServe(t, env)
	seqs := publishAll(t, js, ids)

	for k := 1; k <= kills; k++ {
		waitResultCount(t, js, k*n/(kills+1), 2*time.Minute)
		if c := resultCount(t, js); c >= n {
			t.Fatalf("kill %d: all %d results stored before it; the test proves nothing", k, c)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(10 * time.Second); err != nil || code != -1 {
			t.Fatalf("kill %d: exit %d (%v), want killed by a signal", k, code, err)
		}
		p = testenv.StartServe(t, env)
	}
	got := waitResults(t, js, n, 3*time.Minute)
	checkAllSucceeded(t, got, seqs, ids, hosts)
	requestsAllAcked(t, js, 30*time.Second)
	redelivered := 0
	for _, r := range got {
		if r.Delivery > 1 {
			redelivered++
		}
	}
	// A request whose hook ran twice was delivered again after its result
	// was stored: a kill landed between its result and its acknowledgement.
	inWindow := 0
	for seq, rs := range hookRuns(t, log) {
		if len(rs) > 1 {
			inWindow++
			if rs[1].CompletedAt != got[seq].CompletedAt {
				t.Errorf("request %d: hook ran again with %+v, want the stored result %s", seq, rs[1], got[seq].Raw)
			}
		}
	}
	if inWindow == 0 {
		t.Errorf("no kill landed between a stored result and its acknowledgement; the test proves nothing")
	}
	t.Logf("%d results, %d from a redelivery, %d redelivered after their result was stored, %d Defender calls for %d requests",
		len(got), redelivered, inWindow, emu.Calls(), n)
}

// TestBrokerRestart: the nats-server process is restarted
// mid-run with its file storage kept; the service reconnects on its own and
// every request ends with exactly one result.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	n, restarts := 600, 1
	if soak() {
		n, restarts = 5000, 5
	}
	ids, hosts := knownAlerts("broker", n)
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: hosts, Latency: 20 * time.Millisecond})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	p := testenv.StartServe(t, serviceEnv(emu, cert, srv.URL(), "ACK_WAIT=2s", "CONCURRENCY=4", "LOG_LEVEL=info"))
	seqs := publishAll(t, js, ids)

	for k := 1; k <= restarts; k++ {
		waitResultCount(t, js, k*n/(restarts+1), 2*time.Minute)
		if c := resultCount(t, js); c >= n {
			t.Fatalf("restart %d: all %d results stored before it; the test proves nothing", k, c)
		}
		srv.Restart(t)
	}
	p.WaitForLine(t, "reconnected to NATS", time.Minute)
	got := waitResults(t, js, n, 3*time.Minute)
	checkAllSucceeded(t, got, seqs, ids, hosts)
	requestsAllAcked(t, js, 30*time.Second)
	stillRunning(t, p)
}

// TestDefenderOutage: Defender answers 503 for a while, then
// recovers. A 30 s outage is scaled down with the retry
// budget (RETRY_MAX_ELAPSED=5s): what matters is where a request stands
// against its budget when Defender recovers. Requests that arrive at the
// start of the outage run out of budget and end as unavailable failures;
// requests still within their budget when Defender recovers succeed; none
// is lost; `replay --failed` after the recovery turns the failures into
// successes.
func TestDefenderOutage(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := serviceEnv(emu, cert, srv.URL(), "RETRY_MAX_ELAPSED=5s", "CONCURRENCY=16", "LOG_LEVEL=info")
	testenv.StartServe(t, env)

	emu.SetOutage(http.StatusServiceUnavailable)
	began := time.Now()
	ids := func(prefix string) []string {
		out := make([]string, 8)
		for i := range out {
			out[i] = fmt.Sprintf("%s_%d", prefix, i)
		}
		return out
	}
	// Beyond the budget: in flight from the start of the outage, which
	// lasts until all of them have failed.
	early := ids("outage_early")
	earlySeqs := publishAll(t, js, early)
	waitResultCount(t, js, len(early), time.Minute)
	// Within the budget: in flight (each called at least once) when
	// Defender recovers.
	late := ids("outage_late")
	lateSeqs := publishAll(t, js, late)
	testenv.Eventually(t, 30*time.Second, 5*time.Millisecond, func() bool {
		for _, id := range late {
			if emu.CallsFor(id) == 0 {
				return false
			}
		}
		return true
	}, "every late request reaches Defender")
	emu.SetOutage(0)
	t.Logf("outage of %v", time.Since(began).Round(time.Millisecond))

	got := waitResults(t, js, len(early)+len(late), time.Minute)
	for i, seq := range earlySeqs {
		r := got[seq]
		if r.Status != "failure" || r.Error == nil || r.Error.Kind != message.KindUnavailable || r.Error.HTTPStatus != 503 || r.Attempts < 2 || r.AlertID != early[i] {
			t.Errorf("early request %d: %s, want an unavailable failure after retries", seq, r.Raw)
		}
	}
	for i, seq := range lateSeqs {
		r := got[seq]
		if r.Status != "success" || len(r.Domains) == 0 || r.Attempts < 2 || r.AlertID != late[i] {
			t.Errorf("late request %d: %s, want a success after retries", seq, r.Raw)
		}
	}
	requestsAllAcked(t, js, 30*time.Second)

	code, out := opsCommand(t, env, "replay", "--failed")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("republished %d, skipped 0", len(early))) {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}
	got = waitResults(t, js, 2*len(early)+len(late), time.Minute)
	replays := map[uint64]storedResult{}
	for _, r := range got {
		if r.ReplayOf != 0 {
			replays[r.ReplayOf] = r
		}
	}
	for i, seq := range earlySeqs {
		r, ok := replays[seq]
		if !ok || r.Status != "success" || r.AlertID != early[i] || len(r.Domains) == 0 {
			t.Errorf("replay of request %d: %s, want a success", seq, r.Raw)
		}
	}
	requestsAllAcked(t, js, 30*time.Second)
}

// TestThrottlingWithinQuota: Defender enforces 20 calls per 2 s
// and the service's DEFENDER_RATE_LIMITS matches it: no 429, no failure,
// and Defender never sees more than 20 calls in any 2 s.
func TestThrottlingWithinQuota(t *testing.T) {
	t.Parallel()
	const n = 60
	limit := connector.Limit{Count: 20, Window: 2 * time.Second}
	emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true, Quota: []connector.Limit{limit}})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	testenv.StartServe(t, emu.env(srv.URL(), "DEFENDER_RATE_LIMITS=20/2s", "CONCURRENCY=32", "RETRY_MAX_ELAPSED=30s", "LOG_LEVEL=info"))

	ids := alertIDs("quota", n)
	seqs := publishAll(t, js, ids)
	got := waitResults(t, js, n, 2*time.Minute)
	for i, seq := range seqs {
		if r := got[seq]; r.Status != "success" || r.AlertID != ids[i] {
			t.Errorf("request %d: %s", seq, r.Raw)
		}
	}
	if k := emu.Answered(http.StatusTooManyRequests); k != 0 {
		t.Errorf("Defender answered 429 %d times", k)
	}
	times := emu.CallTimes()
	if most, at := maxInWindow(times, limit.Window); most > limit.Count {
		t.Errorf("%d calls in the %v from %v, limit %d", most, limit.Window, at.Format("15:04:05.000"), limit.Count)
	}
	if t.Failed() { // where the limit was passed
		for _, c := range emu.Recorded() {
			t.Logf("%s %s %d %v", c.At.Format("15:04:05.000"), c.Alert, c.Status, c.RetryAfter)
		}
	}
	if len(times) < n {
		t.Errorf("%d calls for %d requests", len(times), n)
	}
}

// TestThrottlingLimiterTooHigh: the service's limiter allows
// twice Defender's quota, so Defender answers 429; the service waits out
// each Retry-After and still ends every request in a success.
func TestThrottlingLimiterTooHigh(t *testing.T) {
	t.Parallel()
	const n = 50
	emu := newRecordingEmulator(t, emulator.Config{AnyAlert: true, Quota: []connector.Limit{{Count: 20, Window: 2 * time.Second}}})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	testenv.StartServe(t, emu.env(srv.URL(), "DEFENDER_RATE_LIMITS=40/2s", "CONCURRENCY=32", "RETRY_MAX_ELAPSED=60s", "LOG_LEVEL=info"))

	ids := alertIDs("storm", n)
	seqs := publishAll(t, js, ids)
	got := waitResults(t, js, n, 2*time.Minute)
	retried := 0
	for i, seq := range seqs {
		r := got[seq]
		if r.Status != "success" || r.AlertID != ids[i] {
			t.Errorf("request %d: %s", seq, r.Raw)
		}
		if r.Attempts > 1 {
			retried++
		}
	}
	if k := emu.Answered(http.StatusTooManyRequests); k == 0 || retried == 0 {
		t.Fatalf("%d answers 429, %d requests retried: the storm did not happen", k, retried)
	}
	// Each call after a 429 for the same alert came no sooner than its
	// Retry-After.
	last := map[string]defenderCall{}
	for _, c := range emu.Recorded() {
		if prev, ok := last[c.Alert]; ok && prev.Status == http.StatusTooManyRequests {
			if gap := c.At.Sub(prev.At); gap < prev.RetryAfter {
				t.Errorf("%s called again %v after a 429 with Retry-After %v", c.Alert, gap, prev.RetryAfter)
			}
		}
		last[c.Alert] = c
	}
	t.Logf("%d answers 429, %d of %d requests retried", emu.Answered(http.StatusTooManyRequests), retried, n)
}

// TestSlowDefender: answers that take longer than ACK_WAIT do
// not lead to a redelivery, so never to a second Defender call: progress
// acknowledgements keep the delivery alive.
func TestSlowDefender(t *testing.T) {
	t.Parallel()
	slowDefender(t, 4, 4)
}

// TestSlowDefenderQueued: requests that wait for a free worker for longer
// than ACK_WAIT are not delivered twice either: they wait on the server,
// not in a client-side buffer where no progress acknowledgement would reach
// them.
func TestSlowDefenderQueued(t *testing.T) {
	t.Parallel()
	slowDefender(t, 3, 6)
}

func slowDefender(t *testing.T, concurrency, n int) {
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true, Latency: 2500 * time.Millisecond})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, srv.URL(), "ACK_WAIT=1s", fmt.Sprintf("CONCURRENCY=%d", concurrency), "DEFENDER_TIMEOUT=10s"))

	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("slow_%d", i)
	}
	seqs := publishAll(t, js, ids)
	got := waitResults(t, js, len(ids), time.Minute)
	requestsAllAcked(t, js, 30*time.Second)
	for i, seq := range seqs {
		r := got[seq]
		if r.Status != "success" || r.Delivery != 1 || r.Attempts != 1 {
			t.Errorf("request %d: %s, want a success of the first delivery after one call", seq, r.Raw)
		}
		if c := emu.CallsFor(ids[i]); c != 1 {
			t.Errorf("%s: %d Defender calls, want 1", ids[i], c)
		}
	}
}

// TestHostileAnswers: huge, endless, malformed and misdirected answers of
// either API each end in a clear failure of the right kind; the token
// never follows a link or redirect to another host; memory stays bounded
// and the process serves the next request.
func TestHostileAnswers(t *testing.T) {
	t.Parallel()
	for _, api := range []connector.API{connector.Graph, connector.MDE} {
		t.Run(string(api), func(t *testing.T) {
			t.Parallel()
			testHostileAnswers(t, api)
		})
	}
}

func testHostileAnswers(t *testing.T, api connector.API) {
	var elsewhere atomic.Int64
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(other.Close)
	emu, cert := testenv.StartEmulator(t, emulator.Config{
		Alerts: map[string][]string{knownAlert: {"www.example.com", "cdn.example.net"}}})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	p := testenv.StartServe(t, serviceEnv(emu, cert, srv.URL(), "DEFENDER_API="+string(api), "DEFENDER_TIMEOUT=1s", "RETRY_MAX_ELAPSED=2s", "CONCURRENCY=4", "LOG_LEVEL=info"))

	times := func(n int, a emulator.Answer) []emulator.Answer {
		out := make([]emulator.Answer, n)
		for i := range out {
			out[i] = a
		}
		return out
	}
	const html = "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Something went wrong</h1></body></html>"
	htmlHeader := http.Header{"Content-Type": {"text/html; charset=utf-8"}}
	type hostile struct {
		id       string
		answers  []emulator.Answer
		kind     message.Kind
		status   int
		contains string // in the error message
	}
	tests := []hostile{
		{"hostile_50mib", []emulator.Answer{{BodyBytes: 50 << 20}}, message.KindBadResponse, 200, "larger than"},
		{"hostile_endless", times(20, emulator.Answer{Slow: true}), message.KindUnavailable, 0, "in time"},
		{"hostile_redirect", []emulator.Answer{{Status: http.StatusFound, Header: http.Header{"Location": {other.URL + "/v1.0/security/alerts_v2/hostile_redirect"}}}}, message.KindBadResponse, 302, ""},
		{"hostile_html_200", []emulator.Answer{{Body: html, Header: htmlHeader}}, message.KindBadResponse, 200, "JSON"},
		{"hostile_html_502", times(100, emulator.Answer{Status: http.StatusBadGateway, Body: html, Header: htmlHeader}), message.KindUnavailable, 502, ""},
		{"hostile_html_404", []emulator.Answer{{Status: http.StatusNotFound, Body: html, Header: htmlHeader}}, message.KindNotFound, 404, ""},
		{"hostile_null", []emulator.Answer{{Body: "null"}}, message.KindBadResponse, 200, ""},
	}
	if api == connector.MDE {
		tests = append(tests,
			hostile{"hostile_utf8", []emulator.Answer{{Body: "{\"value\":[{\"host\":\"bad\xff\xfe.example.com\"}]}"}}, message.KindBadResponse, 200, "UTF-8"},
			hostile{"hostile_surrogate", []emulator.Answer{{Body: `{"value":[{"host":"bad\ud800.example.com"}]}`}}, message.KindBadResponse, 200, "UTF-8"},
			hostile{"hostile_next_link", []emulator.Answer{{Body: `{"value":[{"host":"a.example.com"}],"@odata.nextLink":"` + other.URL + `/api/alerts/hostile_next_link/domains?$skip=1"}`}}, message.KindBadResponse, 200, "another host"})
	} else {
		tests = append(tests,
			hostile{"hostile_utf8", []emulator.Answer{{Body: "{\"id\":\"hostile_utf8\",\"evidence\":[{\"@odata.type\":\"#microsoft.graph.security.urlEvidence\",\"url\":\"https://bad\xff\xfe.example.com/\"}]}"}}, message.KindBadResponse, 200, "UTF-8"},
			hostile{"hostile_evidence_type", []emulator.Answer{{Body: `{"id":"hostile_evidence_type","evidence":"https://evil.example"}`}}, message.KindBadResponse, 200, "not the documented JSON"},
			hostile{"hostile_url_type", []emulator.Answer{{Body: `{"id":"hostile_url_type","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":{"host":"evil.example"}}]}`}}, message.KindBadResponse, 200, "not a string"})
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		emu.Script(tt.id, tt.answers...)
		ids[i] = tt.id
	}
	seqs := publishAll(t, js, ids)
	got := waitResults(t, js, len(tests), time.Minute)
	for i, seq := range seqs {
		tt, r := tests[i], got[seq]
		if r.Status != "failure" || r.Error == nil {
			t.Errorf("%s: %s, want a failure", tt.id, r.Raw)
			continue
		}
		if r.Error.Kind != tt.kind || r.Error.HTTPStatus != tt.status || r.Error.Message == "" || !strings.Contains(r.Error.Message, tt.contains) {
			t.Errorf("%s: %s, want kind %s, http status %d, a message with %q", tt.id, r.Raw, tt.kind, tt.status, tt.contains)
		}
		if retried := tt.kind == message.KindUnavailable; retried != (r.Attempts > 1) {
			t.Errorf("%s: %d attempts", tt.id, r.Attempts)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}

	// Alive, and serving: a normal request after them succeeds.
	seq := publish(t, js, knownAlert, nil)
	r := waitResults(t, js, len(tests)+1, 30*time.Second)[seq]
	if r.Status != "success" || !slices.Equal(r.Domains, []string{"www.example.com", "cdn.example.net"}) {
		t.Errorf("normal request after the hostile ones: %s", r.Raw)
	}
	stillRunning(t, p)
	rss, err := p.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	const limit = 150 << 20
	if rss > limit {
		t.Errorf("peak RSS %d MiB after a 50 MiB answer, want under %d MiB", rss>>20, limit>>20)
	}
	t.Logf("peak RSS %d MiB", rss>>20)
}

// TestSecretsNeverShow: a recognisable client secret and the
// access tokens the emulator issued never appear in a log line at debug, a
// result or an error message, through successes, failures, a 401 answered
// with a fresh token, a 401 twice, and a wrong secret; also for `get`.
func TestSecretsNeverShow(t *testing.T) {
	t.Parallel()
	const (
		secret      = "Sup3r-S3cret-CLIENT-SECRET-7f3a9c41"
		wrongSecret = "Wr0ng-S3cret-CLIENT-SECRET-b61d04e2"
		missing     = "da000000000000000000_404"
		refused     = "da000000000000000000_401"
	)
	// Tokens of 4 minutes are replaced whenever the service asks again
	// (the credential keeps them until 5 minutes before they expire), so a
	// 401 leads to a new token.
	emu := newRecordingEmulator(t, emulator.Config{ClientSecret: secret, TokenLifetime: 4 * time.Minute,
		Alerts: map[string][]string{knownAlert: {"www.example.com"}, alertNone: {}}})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	// The hooks are what logs at debug, with their output: one echoes the
	// result, the other prints its environment, which must not hold the
	// secret either.
	debug := []string{"LOG_LEVEL=debug", "ON_SUCCESS_EXEC=cat", "ON_FAILURE_EXEC=env"}
	env := emu.env(srv.URL(), debug...)
	p := testenv.StartServe(t, env)

	type step struct {
		body     string
		status   string
		kind     message.Kind
		attempts int
	}
	var seqs []uint64
	run := func(s step) {
		t.Helper()
		seq := publish(t, js, s.body, nil)
		r := waitResults(t, js, len(seqs)+1, 30*time.Second)[seq]
		seqs = append(seqs, seq)
		if r.Status != s.status || r.Kind() != s.kind || r.Attempts != s.attempts {
			t.Errorf("%s: %s, want %s %s after %d attempts", s.body, r.Raw, s.status, s.kind, s.attempts)
		}
	}
	run(step{knownAlert, "success", "", 1})
	run(step{missing, "failure", message.KindNotFound, 1})
	emu.ExpireTokens()
	run(step{alertNone, "success", "", 2})
	// The token that replaced the expired one is seconds old: a 401 to it
	// is final at once, without another token.
	emu.Script(refused, emulator.Answer{Status: 401, Body: `{"error":{"code":"Unauthorized","message":"x"}}`})
	run(step{refused, "failure", message.KindUnauthorized, 1})
	p.Stop(t)

	badEnv := emu.env(srv.URL(), append(debug, "AZURE_CLIENT_SECRET="+wrongSecret)...)
	bad := testenv.StartServe(t, badEnv)
	run(step{alertTwo, "failure", message.KindUnauthorized, 0})
	bad.Stop(t)

	bin := testenv.BuildBinary(t)
	gets := []*testenv.Process{
		testenv.StartService(t, bin, env, "get", knownAlert, missing),
		testenv.StartService(t, bin, badEnv, "get", knownAlert),
	}
	for i, g := range gets {
		if code, err := g.Wait(time.Minute); err != nil || code != 1 {
			t.Errorf("get %d: exit %d (%v), want 1 (a failure among the results)\n%s", i, code, err, g.Output())
		}
	}

	tokens := emu.Tokens()
	if len(tokens) < 3 {
		t.Fatalf("%d tokens issued, want at least 3 (first, after the expiry, and get's)", len(tokens))
	}
	var haystack strings.Builder
	haystack.WriteString(outputOf(append([]*testenv.Process{p, bad}, gets...)...))
	for _, r := range results(t, js) {
		fmt.Fprintf(&haystack, "%s %v\n", r.Raw, r.Header)
	}
	text := haystack.String()
	if !strings.Contains(text, `"level":"DEBUG"`) {
		t.Errorf("no debug line logged; the test proves less")
	}
	secrets := append([]string{secret, wrongSecret}, tokens...)
	for _, s := range secrets {
		for line := range strings.SplitSeq(text, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("a secret (%.12s...) shows: %s", s, line)
			}
		}
	}
}
