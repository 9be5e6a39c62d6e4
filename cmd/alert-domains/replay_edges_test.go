package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/message"
)

// TestReplayDefaultKinds: without --kind, replay --failed takes only the
// kinds a replay can fix; --kind all takes every kind.
func TestReplayDefaultKinds(t *testing.T) {
	o := newOpsEnv(t, true)
	all := []message.Kind{
		message.KindUnavailable, message.KindThrottled, message.KindUnauthorized, message.KindForbidden,
		message.KindUnknownTenant,
		message.KindNotFound, message.KindInvalidRequest, message.KindBadRequest, message.KindBadResponse,
	}
	bodies := make(map[string]message.Kind)
	for i, k := range all {
		body := "alert_" + strconv.Itoa(i)
		bodies[body] = k
		seq := o.request(t, body, nil)
		o.failure(t, body, k, seq, 0)
	}
	before := o.lastRequestSeq(t)
	out := o.mustRun(t, "replay", "--failed")
	got := map[message.Kind]int{}
	for _, m := range o.requestsAfter(t, before) {
		got[bodies[string(m.Data)]]++
	}
	for _, k := range all {
		want := 0
		if k == message.KindUnavailable || k == message.KindThrottled || k == message.KindUnauthorized || k == message.KindForbidden || k == message.KindUnknownTenant {
			want = 1
		}
		if got[k] != want {
			t.Errorf("default run republished %d requests of kind %s, want %d\n%s", got[k], k, want, out)
		}
	}
	if !strings.Contains(out, "found 5 failure results (4 more") {
		t.Errorf("summary:\n%s", out)
	}

	// --kind all: every kind; the five replayed already are pending.
	before = o.lastRequestSeq(t)
	out = o.mustRun(t, "replay", "--failed", "--kind", "all")
	if n := len(o.requestsAfter(t, before)); n != 4 {
		t.Errorf("--kind all republished %d, want the 4 not replayed yet\n%s", n, out)
	}
	if !strings.Contains(out, "found 9 failure results; republished 4, skipped 5 (5 "+skipReplayPending+")") {
		t.Errorf("summary:\n%s", out)
	}
}

// TestReplayIgnoresDecoys: a Replay-Of header (or a message ID of replay's
// form) set by any publisher neither makes replay republish a request that
// succeeded nor hides a genuine failure from it.
func TestReplayIgnoresDecoys(t *testing.T) {
	o := newOpsEnv(t, true)
	const succeededBody, failedBody, decoyBody = "alert_succeeded", "alert_failed", "alert_decoy"

	// A request that succeeded, and a decoy claiming to replay it that
	// failed: the service copies the decoy's Replay-Of into its result.
	good := o.request(t, succeededBody, nil)
	o.result(t, message.Success(succeededBody, []string{"www.example.com"}, 1, false, time.Now()), good)
	h := nats.Header{}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(good, 10))
	decoy := o.request(t, decoyBody, h)
	o.failure(t, decoyBody, message.KindUnavailable, decoy, good)

	// A genuine failure, then decoys that claim to be its replay: one by
	// Replay-Of, one with the very message ID replay would use.
	failed := o.request(t, failedBody, nil)
	o.failure(t, failedBody, message.KindUnavailable, failed, 0)
	failureSeq := lastResultSeq(t, o)
	h = nats.Header{}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(failed, 10))
	o.request(t, "alert_other", h)
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	identity := strconv.FormatInt(s.CachedInfo().Created.UnixNano(), 36)
	forged := nats.Header{}
	forged.Set(message.HeaderReplayOf, strconv.FormatUint(failed, 10))
	forged.Set(message.HeaderMsgID, replayID{source: failed, answers: failureSeq}.String(identity))
	o.request(t, "alert_forged", forged)

	before := o.lastRequestSeq(t)
	out := o.mustRun(t, "replay", "--failed")
	msgs := o.requestsAfter(t, before)
	byBody := map[string]int{}
	for _, m := range msgs {
		byBody[string(m.Data)]++
		if string(m.Data) == failedBody && replayOf(t, m) != failed {
			t.Errorf("the replay of %d says Replay-Of %d", failed, replayOf(t, m))
		}
	}
	if byBody[succeededBody] != 0 {
		t.Errorf("republished the request that succeeded\n%s", out)
	}
	if byBody[failedBody] != 1 {
		t.Errorf("republished the genuine failure %d times, want 1\n%s", byBody[failedBody], out)
	}
	if byBody[decoyBody] != 1 || len(msgs) != 2 {
		t.Errorf("republished %v, want the genuine failure and the decoy's own request once each\n%s", byBody, out)
	}

	// The genuine copy now answers the failure: a second run leaves it.
	before = o.lastRequestSeq(t)
	out = o.mustRun(t, "replay", "--failed")
	if n := len(o.requestsAfter(t, before)); n != 0 {
		t.Errorf("second run republished %d\n%s", n, out)
	}
}

func lastResultSeq(t *testing.T, o *opsEnv) uint64 {
	t.Helper()
	s, err := o.js.Stream(t.Context(), o.cfg.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

// TestReplayConcurrentRunsDeduplicate: two replay --failed runs at once
// store each copy once.
func TestReplayConcurrentRunsDeduplicate(t *testing.T) {
	o := newOpsEnv(t, true)
	const n = 60
	for i := range n {
		body := "alert_" + strconv.Itoa(i)
		seq := o.request(t, body, nil)
		o.failure(t, body, message.KindUnavailable, seq, 0)
	}
	before := o.lastRequestSeq(t)
	type res struct {
		code     int
		out, err string
	}
	done := make(chan res, 2)
	for range 2 {
		go func() {
			code, out, errOut := o.run(t.Context(), "replay", "--failed", "--rate", "120")
			done <- res{code, out, errOut}
		}()
	}
	var outs bytes.Buffer
	for range 2 {
		r := <-done
		if r.code != 0 {
			t.Errorf("a run exited %d\n%s\n%s", r.code, r.out, r.err)
		}
		outs.WriteString(r.out)
	}
	msgs := o.requestsAfter(t, before)
	count := map[string]int{}
	for _, m := range msgs {
		count[string(m.Data)]++
	}
	if len(msgs) != n || len(count) != n {
		t.Fatalf("two runs at once stored %d copies of %d requests, want %d of %d\n%s", len(msgs), len(count), n, n, outs.String())
	}
}
