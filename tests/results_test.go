package tests

// One result per request, whatever the request carries and whatever happens
// between a stored result and its acknowledgement: oversized headers and
// answers, a request stream deleted and re-created, downtime longer than
// the result stream's duplicate window, hooks and the safety net.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// TestOversizedHeadersAndAnswersGetOneResult: request headers near the 64 KiB
// limit of a stored message's headers, and an answer whose domains would
// not fit in one message, still end with exactly one result each.
func TestOversizedHeadersAndAnswersGetOneResult(t *testing.T) {
	t.Parallel()
	// Long host names: their result is larger than the server's 1 MiB,
	// while the answer of either API stays under the 4 MiB read limit.
	huge := make([]string, 6000)
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60)
	for i := range huge {
		huge[i] = fmt.Sprintf("host-%05d.%s.example.com", i, long)
	}
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{"huge_answer": huge}, AnyAlert: true})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url))
	_, js := testenv.Connect(t, url)

	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	seqTrace := publish(t, js, "alert_big_traceparent", nats.Header{"traceparent": {strings.Repeat("a", 65400)}})
	seqCorr := publish(t, js, "alert_big_correlation", nats.Header{"Correlation-Id": {strings.Repeat("c", 65000)}})
	seqValid := publish(t, js, "alert_valid_traceparent", nats.Header{"traceparent": {valid}})
	seqUpper := publish(t, js, "alert_upper_traceparent", nats.Header{"traceparent": {strings.ToUpper(valid)}})
	seqHuge := publish(t, js, "huge_answer", nil)

	got := waitResults(t, js, 5, 60*time.Second)
	requestsAllAcked(t, js, 10*time.Second)
	for _, seq := range []uint64{seqTrace, seqCorr, seqValid, seqUpper} {
		if r := got[seq]; r.Status != "success" {
			t.Errorf("request %d: %.300s, want a success", seq, r.Raw)
		}
	}
	if tp := got[seqTrace].Header.Get("traceparent"); tp != "" {
		t.Errorf("an invalid traceparent of %d bytes was copied to the result", len(tp))
	}
	if tp := got[seqUpper].Header.Get("traceparent"); tp != "" {
		t.Errorf("an upper-case traceparent was copied to the result: %q", tp)
	}
	if tp := got[seqValid].Header.Get("traceparent"); tp != valid {
		t.Errorf("valid traceparent on the result: %q, want %q", tp, valid)
	}
	r := got[seqCorr]
	if n := len(r.Header.Get("Correlation-Id")); n == 0 || n > 256 {
		t.Errorf("Correlation-Id header of %d bytes on the result, want 1 to 256", n)
	}
	if n := len(r.CorrelationID); n == 0 || n > 256 {
		t.Errorf("correlationId of %d bytes in the result, want 1 to 256", n)
	}
	h := got[seqHuge]
	if h.Status != "failure" || h.Error == nil || h.Error.Kind != "bad_response" || !strings.Contains(h.Error.Message, "too large") {
		t.Errorf("answer too large for a result: %.300s, want a bad_response failure", h.Raw)
	}
}

// provisioned loads the configuration of env and creates its topology, as
// an operator does before starting services with PROVISION=false.
func provisioned(t *testing.T, env []string) (*config.Config, broker.Topology) {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, broker.NewTopology(cfg)
}

// TestRequestStreamRecreatedGetsNewResults: a request stream deleted and
// created again under a running service starts its sequences at 1 again;
// the requests it stores then still get their results, not dropped as
// duplicates of the results of the old stream's requests.
func TestRequestStreamRecreatedGetsNewResults(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	_, url := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, url)
	env := serviceEnv(emu, cert, url, "PROVISION=false")
	_, topo := provisioned(t, env)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartServe(t, env)

	before := alertIDs("before", 5)
	publishAll(t, js, before)
	waitResultCount(t, js, len(before), 30*time.Second)
	requestsAllAcked(t, js, 10*time.Second)

	// The operator deletes the request stream (and with it the consumers)
	// and provisions it again.
	if err := js.DeleteStream(t.Context(), requestStream); err != nil {
		t.Fatal(err)
	}
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	after := alertIDs("after", 5)
	seqs := publishAll(t, js, after)
	if seqs[0] != 1 {
		t.Fatalf("the new stream stored its first request at %d, want 1", seqs[0])
	}
	testenv.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool {
		return emu.Calls() >= len(before)+len(after)
	}, "the new requests looked up:\n%s", p.Output())
	requestsAllAcked(t, js, 30*time.Second)

	byAlert := map[string]int{}
	for _, r := range results(t, js) {
		byAlert[r.AlertID]++
	}
	for _, id := range append(before, after...) {
		if byAlert[id] != 1 {
			t.Errorf("%s: %d results, want 1", id, byAlert[id])
		}
	}
}

// hookScript writes a hook that appends the result it is given, as one
// line, to log, then sleeps $HOOK_SLEEP seconds (0 when unset): a slow hook
// holds stored results unacknowledged, the window a crash must hit.
func hookScript(t *testing.T) (script, log string) {
	t.Helper()
	dir := t.TempDir()
	script, log = filepath.Join(dir, "hook.sh"), filepath.Join(dir, "hook.log")
	body := "#!/bin/sh\nline=$(cat)\nprintf '%s\\n' \"$line\" >> " + log + "\nsleep \"${HOOK_SLEEP:-0}\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

// hookRuns reads the hook's log: the results it was given, by request
// sequence (input cut short by a kill is left out).
func hookRuns(t *testing.T, log string) map[uint64][]message.Result {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	runs := map[uint64][]message.Result{}
	for line := range strings.Lines(string(data)) {
		var r message.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			// A hook whose service was killed while writing its input
			// read a part of it.
			continue
		}
		runs[r.RequestSequence] = append(runs[r.RequestSequence], r)
	}
	return runs
}

// shortResultWindow shortens the result stream's duplicate window to 1s (and
// gives it a probe subject) unless the soak runs, which waits out the real
// one, and returns a function that waits until the window has passed for
// everything stored before it is called.
func shortResultWindow(t *testing.T, js jetstream.JetStream) (forget func()) {
	t.Helper()
	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if !soak() {
		cfg.Duplicates = time.Second
	}
	cfg.Subjects = append(cfg.Subjects, "probe.results")
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		id := "probe-" + time.Now().String()
		probe := func() bool {
			ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "probe.results", Header: nats.Header{nats.MsgIdHdr: {id}}})
			if err != nil {
				t.Fatal(err)
			}
			return !ack.Duplicate
		}
		probe()
		testenv.Eventually(t, cfg.Duplicates+time.Minute, 100*time.Millisecond, probe, "the duplicate window to pass")
		if err := st.Purge(t.Context(), jetstream.WithPurgeSubject("probe.results")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDowntimeLongerThanDuplicateWindow: results stored, their slow hooks
// running, the service killed with SIGKILL before acknowledging them, and
// started again only after the result stream's duplicate window: every
// request still ends with exactly one result, and each hook cut by the kill
// runs again with the stored result.
func TestDowntimeLongerThanDuplicateWindow(t *testing.T) {
	t.Parallel()
	const n = 40
	ids, hosts := knownAlerts("downtime", n)
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: hosts})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	script, log := hookScript(t)
	env := serviceEnv(emu, cert, srv.URL(), "PROVISION=false", "ACK_WAIT=2s", "CONCURRENCY=8",
		"LOG_LEVEL=info", "ON_SUCCESS_EXEC=/bin/sh "+script, "EXEC_TIMEOUT=30s")
	_, topo := provisioned(t, env)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	forget := shortResultWindow(t, js)

	p := testenv.StartServe(t, append(env, "HOOK_SLEEP=30", "HOOK_ENV=HOOK_SLEEP"))
	seqs := publishAll(t, js, ids)
	// Eight hooks running: eight results stored and not acknowledged.
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return len(hookRuns(t, log)) >= 8 }, "hooks running")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	cut := hookRuns(t, log)
	stored := results(t, js)
	c, err := js.Consumer(t.Context(), requestStream, consumerName)
	if err != nil {
		t.Fatal(err)
	}
	if info := c.CachedInfo(); len(stored) < len(cut) || info.NumAckPending < len(cut) {
		t.Fatalf("at the kill: %d results, %d hooks running, %d unacknowledged; the kill missed the window between result and ack",
			len(stored), len(cut), info.NumAckPending)
	}
	forget()

	testenv.StartServe(t, env)
	got := waitResults(t, js, n, 60*time.Second)
	checkAllSucceeded(t, got, seqs, ids, hosts)
	requestsAllAcked(t, js, 30*time.Second)
	runs := hookRuns(t, log)
	for _, seq := range seqs {
		if len(runs[seq]) == 0 {
			t.Errorf("request %d: its hook never ran", seq)
		}
	}
	for seq := range cut {
		if len(runs[seq]) < 2 {
			t.Errorf("request %d: its hook was cut by the kill and did not run again", seq)
			continue
		}
		if again := runs[seq][1]; again.Delivery != cut[seq][0].Delivery || again.CompletedAt != cut[seq][0].CompletedAt {
			t.Errorf("request %d: hook ran again with %+v, want the stored result %+v", seq, again, cut[seq][0])
		}
	}
	// A call in flight at the kill, its result not stored, is asked again;
	// an alert whose result was stored before the kill is not.
	for _, r := range stored {
		if calls := emu.CallsFor(r.AlertID); calls != 1 {
			t.Errorf("alert %s, its result stored before the kill: %d Defender calls, want 1", r.AlertID, calls)
		}
	}
}

// TestHookCutOnLastDeliveryRunsAgain: with MAX_DELIVER=1 each request's one
// delivery stores its result and starts its slow hook, and the service is
// killed with SIGKILL while the hooks run. No delivery is left to run them
// again: the safety net, answering the max-deliveries advisories after the
// restart, finds each stored result through the request's record and runs
// its hook with it, and stores nothing more.
func TestHookCutOnLastDeliveryRunsAgain(t *testing.T) {
	t.Parallel()
	const n = 4
	ids, hosts := knownAlerts("lastdel", n)
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: hosts})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	script, log := hookScript(t)
	env := serviceEnv(emu, cert, srv.URL(), "PROVISION=false", "ACK_WAIT=2s", "MAX_DELIVER=1", "CONCURRENCY=8",
		"LOG_LEVEL=info", "ON_SUCCESS_EXEC=/bin/sh "+script, "EXEC_TIMEOUT=30s")
	_, topo := provisioned(t, env)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartServe(t, append(env, "HOOK_SLEEP=30", "HOOK_ENV=HOOK_SLEEP"))
	seqs := publishAll(t, js, ids)
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return len(hookRuns(t, log)) >= n }, "hooks running")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	cut := hookRuns(t, log)
	c, err := js.Consumer(t.Context(), requestStream, consumerName)
	if err != nil {
		t.Fatal(err)
	}
	if stored, info := resultCount(t, js), c.CachedInfo(); stored < n || info.NumAckPending < n {
		t.Fatalf("at the kill: %d results, %d hooks running, %d unacknowledged; the kill missed the window between result and ack",
			stored, len(cut), info.NumAckPending)
	}

	q := testenv.StartServe(t, env)
	testenv.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool {
		runs := hookRuns(t, log)
		for _, seq := range seqs {
			if len(runs[seq]) < 2 {
				return false
			}
		}
		return true
	}, "every hook cut by the kill run again:\n%s", q.Output())
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool {
		c, err := js.Consumer(t.Context(), requestStream, consumerName+"-max-deliveries")
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.Delivered.Stream > 0 && info.NumPending == 0 && info.NumAckPending == 0
	}, "every advisory acknowledged")

	checkAllSucceeded(t, waitResults(t, js, n, 10*time.Second), seqs, ids, hosts)
	if got := resultCount(t, js); got != n {
		t.Errorf("%d results for %d requests, want %d", got, n, n)
	}
	for _, seq := range seqs {
		runs := hookRuns(t, log)[seq]
		if len(runs) < 2 {
			t.Errorf("request %d: hook ran %d times, want again after the kill", seq, len(runs))
			continue
		}
		if again := runs[1]; again.Status != message.StatusSuccess || again.Delivery != cut[seq][0].Delivery ||
			again.CompletedAt != cut[seq][0].CompletedAt {
			t.Errorf("request %d: hook ran again with %+v, want the stored result %+v", seq, again, cut[seq][0])
		}
	}
	if emu.Calls() > n {
		t.Errorf("%d Defender calls for %d requests", emu.Calls(), n)
	}
}

// TestBlockedResultStreamKeepsCachedAnswers: while the result stream takes
// no success results, a request for an alert whose answer is cached runs
// out of deliveries; the safety net's answer is the cached success, stored
// once the stream takes it again, not an unavailable failure.
func TestBlockedResultStreamKeepsCachedAnswers(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{alertTwo: {"www.example.com"}}})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url, "CACHE_TTL=1h", "MAX_DELIVER=2", "ACK_WAIT=1s"))
	_, js := testenv.Connect(t, url)

	first := publish(t, js, alertTwo, nil)
	waitResults(t, js, 1, 30*time.Second)

	// Take the success subject away from the result stream.
	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	blocked := cfg
	blocked.Subjects = []string{failureSubject}
	if _, err := js.UpdateStream(t.Context(), blocked); err != nil {
		t.Fatal(err)
	}
	second := publish(t, js, alertTwo, nil)
	// Both deliveries fail to store the cached success; the safety net
	// receives the advisory.
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool {
		c, err := js.Consumer(t.Context(), requestStream, consumerName+"-max-deliveries")
		return err == nil && c.CachedInfo().Delivered.Stream > second
	}, "the safety net to take the advisory")
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	got := waitResults(t, js, 2, 30*time.Second)
	r := got[second]
	if r.Status != "success" || r.Cached == nil || !*r.Cached || r.Subject != successSubject || len(r.Domains) != 1 {
		t.Errorf("request %d after a blocked result stream: %s, want the cached success", second, r.Raw)
	}
	if got[first].Status != "success" {
		t.Errorf("request %d: %s", first, got[first].Raw)
	}
}
