package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/internal/ops"
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
	if !strings.Contains(out, "found 9 failure results; republished 4, skipped 5 (5 "+ops.SkipReplayPending+")") {
		t.Errorf("summary:\n%s", out)
	}
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
