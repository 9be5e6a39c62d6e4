package ops

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2h", want: now.Add(-2 * time.Hour)},
		{in: "90s", want: now.Add(-90 * time.Second)},
		{in: "2026-11-26T08:30:00Z", want: time.Date(2026, 11, 26, 8, 30, 0, 0, time.UTC)},
		{in: "2026-11-26T08:30:00+01:00", want: time.Date(2026, 11, 26, 7, 30, 0, 0, time.UTC)},
		{in: "0s", err: true},
		{in: "-5m", err: true},
		{in: "yesterday", err: true},
		{in: "2026-11-26", err: true},
	}
	for _, tt := range tests {
		got, err := ParseWhen(tt.in, now)
		if tt.err != (err != nil) || !got.Equal(tt.want) {
			t.Errorf("ParseWhen(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestPlanFailures(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	failures := []failureRef{
		{resultSeq: 10, at: at(10), own: 1, alertID: "a", kind: message.KindUnavailable},
		{resultSeq: 11, at: at(11), own: 2, alertID: "b", kind: message.KindUnavailable},
		{resultSeq: 12, at: at(12), own: 3, alertID: "c", kind: message.KindUnavailable},
		{resultSeq: 13, at: at(13), own: 4, alertID: "d", kind: message.KindThrottled},
		// 9 is the copy of 4 that answered failure 13, and failed too.
		{resultSeq: 20, at: at(20), own: 9, alertID: "d", kind: message.KindThrottled},
		// 5 has a claimed copy (7) that replay did not publish: a decoy.
		{resultSeq: 22, at: at(22), own: 5, alertID: "e", kind: message.KindUnavailable},
	}
	succeeded := map[alertKey]uint64{{alertID: "a"}: 15, {alertID: "b"}: 5} // a succeeded after its failure, b before
	copies := map[uint64][]uint64{12: {8}, 13: {9}, 22: {7}}
	genuine := func(seq uint64) (bool, error) { return seq != 7, nil }
	items, err := planFailures(failures, succeeded, copies, genuine)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		seq  uint64
		skip string
	}{
		{1, SkipSucceededSince},
		{2, ""},
		{3, SkipReplayPending},
		{4, SkipReplayFailed},
		{9, ""},
		{5, ""},
	}
	if len(items) != len(want) {
		t.Fatalf("got %d items, want %d", len(items), len(want))
	}
	for i, w := range want {
		if items[i].seq != w.seq || items[i].skip != w.skip {
			t.Errorf("item %d = %+v, want seq %d skip %q", i, items[i], w.seq, w.skip)
		}
	}
}

func TestReplayMessageDropsServerHeaders(t *testing.T) {
	raw := &jetstream.RawStreamMsg{
		Subject:  "req",
		Sequence: 42,
		Data:     []byte("abc"),
		Header: nats.Header{
			"Nats-Msg-Id":                 {"x"},
			"Nats-Expected-Last-Sequence": {"7"},
			"Nats-Rollup":                 {"all"},
			"Replay-Of":                   {"3"},
			"Correlation-Id":              {"c"},
			"X-Custom":                    {"1", "2"},
		},
	}
	m := replayMessage(raw, 42, "replay-id")
	want := nats.Header{"Replay-Of": {"42"}, "Correlation-Id": {"c"}, "X-Custom": {"1", "2"}, "Nats-Msg-Id": {"replay-id"}}
	if m.Subject != "req" || string(m.Data) != "abc" || len(m.Header) != len(want) {
		t.Fatalf("message %+v", m)
	}
	for k, v := range want {
		if strings.Join(m.Header[k], ",") != strings.Join(v, ",") {
			t.Errorf("header %s = %v, want %v", k, m.Header[k], v)
		}
	}
}

func TestParseKinds(t *testing.T) {
	replayableKinds := []message.Kind{message.KindUnauthorized, message.KindForbidden, message.KindThrottled, message.KindUnavailable, message.KindUnknownTenant}
	tests := []struct {
		in       string
		want     []message.Kind // nil: every kind
		defaults bool
		err      bool
	}{
		{in: "", want: replayableKinds, defaults: true},
		{in: "  ", want: replayableKinds, defaults: true},
		{in: "all", want: nil},
		{in: "not_found", want: []message.Kind{message.KindNotFound}},
		{in: "unavailable, throttled", want: []message.Kind{message.KindUnavailable, message.KindThrottled}},
		{in: "unavailable,nope", err: true},
		{in: "success", err: true},
		{in: "unavailable,", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			kinds, defaults, err := ParseKinds(tt.in)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), "is not a failure kind (invalid_request, ") {
					t.Fatalf("error %v, want one naming the kinds", err)
				}
				return
			}
			if err != nil || defaults != tt.defaults {
				t.Fatalf("defaults %v, error %v; want %v, nil", defaults, err, tt.defaults)
			}
			if (tt.want == nil) != (kinds == nil) || len(kinds) != len(tt.want) {
				t.Fatalf("kinds %v, want %v", kinds, tt.want)
			}
			for _, k := range tt.want {
				if !kinds[k] {
					t.Errorf("kinds %v lack %s", kinds, k)
				}
			}
		})
	}
}

func TestReplayID(t *testing.T) {
	tests := []struct {
		id    replayID
		want  string
		parse replayID // what the ID says: source and failure answered
	}{
		{replayID{source: 4, answers: 13}, "replay-abc-4-f13", replayID{source: 4, answers: 13}},
		{replayID{source: 7}, "replay-abc-7-s", replayID{source: 7}},
	}
	for _, tt := range tests {
		s := tt.id.String("abc")
		if s != tt.want {
			t.Errorf("%+v.String = %q, want %q", tt.id, s, tt.want)
		}
		for _, id := range []string{s, s + "-x1"} {
			if got, ok := parseReplayID(id, "abc"); !ok || got != tt.parse {
				t.Errorf("parseReplayID(%q) = %+v, %v; want %+v", id, got, ok, tt.parse)
			}
		}
		if _, ok := parseReplayID(s, "abd"); ok {
			t.Errorf("parseReplayID(%q) of another stream is ok", s)
		}
	}
	for _, s := range []string{"", "replay-abc-", "replay-abc-0-f1", "replay-abc-x-f1", "publisher-1", "replay-abc-5"} {
		if id, ok := parseReplayID(s, "abc"); ok {
			t.Errorf("parseReplayID(%q) = %+v, ok", s, id)
		}
	}
}

// TestReplayPlan: what Plan selects, and marks, for each form of replay,
// on one set of stored requests and results.
func TestReplayPlan(t *testing.T) {
	e := newTestEnv(t, nil)
	a := e.request(t, "", "alert_a", nil)                                  // unavailable
	b := e.request(t, "", "alert_b", nil)                                  // not_found
	c := e.request(t, "contoso", "alert_c", nil)                           // throttled, contoso
	d := e.request(t, "", `{"alertId":"alert_d","tenant":"contoso"}`, nil) // unknown_tenant, names contoso
	x := e.request(t, "", "alert_x", nil)                                  // unavailable, then succeeded
	e.failure(t, "", "alert_a", message.KindUnavailable, a)
	e.failure(t, "", "alert_b", message.KindNotFound, b)
	e.failure(t, "contoso", "alert_c", message.KindThrottled, c)
	e.failure(t, "", "alert_d", message.KindUnknownTenant, d)
	e.failure(t, "", "alert_x", message.KindUnavailable, x)
	// The alert succeeded later, on a request of its own.
	e.success(t, "", "alert_x", e.request(t, "", "alert_x", nil))
	// A failure that names no request: the service never writes one, so it
	// is ignored.
	e.failure(t, "", "", message.KindInvalidRequest, 0)

	type want struct {
		seq  uint64
		skip string
	}
	every, _, _ := ParseKinds("all")
	defaults, _, _ := ParseKinds("")
	tests := []struct {
		name     string
		opts     ReplayOptions
		want     []want
		filtered int
	}{
		{"failed, default kinds", ReplayOptions{Failed: true, Kinds: defaults},
			[]want{{a, ""}, {c, ""}, {d, ""}, {x, SkipSucceededSince}}, 1},
		{"failed, every kind", ReplayOptions{Failed: true, Kinds: every},
			[]want{{a, ""}, {b, ""}, {c, ""}, {d, ""}, {x, SkipSucceededSince}}, 0},
		{"failed, one alert", ReplayOptions{Failed: true, Alert: "alert_b"},
			[]want{{b, ""}}, 4},
		{"failed, tenant", ReplayOptions{Failed: true, Kinds: every, Tenant: "contoso"},
			[]want{{c, ""}, {d, ""}}, 3},
		{"stored range", ReplayOptions{FromSeq: b, ToSeq: d}, []want{{b, ""}, {c, ""}, {d, ""}}, 0},
		{"stored since, tenant", ReplayOptions{Since: time.Now().Add(-time.Hour), Tenant: "contoso"}, []want{{c, ""}, {d, ""}}, 4},
		{"stored since, future", ReplayOptions{Since: time.Now().Add(time.Hour)}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReplay(t.Context(), e.js, e.cfg, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			items, err := r.Plan(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, it := range items {
				got = append(got, want{it.seq, it.skip})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("plan %v, want %v", got, tt.want)
			}
			if s := r.Summary(); s.Found != len(tt.want) || s.Filtered != tt.filtered || (tt.opts.Failed && s.Ignored != 1) {
				t.Errorf("found %d, filtered %d, ignored %d; want %d, %d, and 1 ignored with --failed", s.Found, s.Filtered, s.Ignored, len(tt.want), tt.filtered)
			}
		})
	}
}

// TestReplayRepublishes: the copies keep the original's body, subject and
// headers but the server's, name their original and carry replay's own
// message ID; a second run finds them pending; a dry run publishes nothing.
func TestReplayRepublishes(t *testing.T) {
	e := newTestEnv(t, nil)
	h := nats.Header{}
	h.Set(message.HeaderCorrelationID, "siem-42")
	h.Set(message.HeaderMsgID, "publisher-dedup-1")
	a := e.request(t, "", "alert_a", h)
	c := e.request(t, "contoso", "alert_c", nil)
	gone := e.request(t, "", "alert_gone", nil)
	e.failure(t, "", "alert_a", message.KindUnavailable, a)
	e.failure(t, "contoso", "alert_c", message.KindThrottled, c)
	e.failure(t, "", "alert_gone", message.KindUnavailable, gone)
	s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	before := e.lastSeq(t, e.cfg.RequestStream)

	if events, sum := e.replay(t, ReplayOptions{Failed: true, DryRun: true}); len(events) != 2 || sum.Republished != 2 || events[0].What != WouldRepublish {
		t.Fatalf("dry run: %+v, %+v", events, sum)
	}
	if n := len(e.requestsAfter(t, before)); n != 0 {
		t.Fatalf("dry run published %d", n)
	}

	events, sum := e.replay(t, ReplayOptions{Failed: true})
	// A candidate skipped is reported at once, a copy once the stream
	// acknowledged it: compared in the order of the originals.
	slices.SortFunc(events, func(a, b ReplayEvent) int { return cmp.Compare(a.Seq, b.Seq) })
	want := []ReplayEvent{
		{What: Republished, Seq: a, AlertID: "alert_a", Note: "as " + strconv.FormatUint(before+1, 10), Detail: "failure unavailable"},
		{What: Republished, Seq: c, AlertID: "alert_c", Note: "as " + strconv.FormatUint(before+2, 10), Detail: "failure throttled"},
	}
	if !slices.Equal(events, want) || sum.Republished != 2 || sum.Ignored != 1 { // the failure of a request no longer stored cannot be checked

		t.Fatalf("events %+v\nwant   %+v\nsummary %+v", events, want, sum)
	}
	msgs := e.requestsAfter(t, before)
	if len(msgs) != 2 {
		t.Fatalf("stored %d copies, want 2", len(msgs))
	}
	for i, orig := range []struct {
		seq     uint64
		subject string
		body    string
	}{{a, e.cfg.RequestSubject, "alert_a"}, {c, e.cfg.RequestSubject + ".contoso", "alert_c"}} {
		m := msgs[i]
		if m.Subject != orig.subject || string(m.Data) != orig.body || m.Header.Get(message.HeaderReplayOf) != strconv.FormatUint(orig.seq, 10) {
			t.Errorf("copy %d: %s %q %v, want the copy of %d", i, m.Subject, m.Data, m.Header, orig.seq)
		}
		if id := m.Header.Get(message.HeaderMsgID); !strings.HasPrefix(id, "replay-") {
			t.Errorf("copy %d: message ID %q, want replay's own", i, id)
		}
	}
	if msgs[0].Header.Get(message.HeaderCorrelationID) != "siem-42" {
		t.Errorf("headers not kept: %v", msgs[0].Header)
	}

	events, sum = e.replay(t, ReplayOptions{Failed: true})
	if sum.Republished != 0 || sum.Skipped[SkipReplayPending] != 2 || len(events) != 2 {
		t.Errorf("second run: %+v, %+v", events, sum)
	}
}

// TestReplayIgnoresDecoys: a Replay-Of header (or a message ID of replay's
// form) set by any publisher neither makes replay republish a request that
// succeeded nor hides a genuine failure from it.
func TestReplayIgnoresDecoys(t *testing.T) {
	e := newTestEnv(t, nil)
	const succeededBody, failedBody, decoyBody = "alert_succeeded", "alert_failed", "alert_decoy"

	// A request that succeeded, and a decoy claiming to replay it that
	// failed: the service copies the decoy's Replay-Of into its result.
	good := e.request(t, "", succeededBody, nil)
	e.success(t, "", succeededBody, good)
	h := nats.Header{}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(good, 10))
	decoy := e.request(t, "", decoyBody, h)
	r := message.Failure(decoyBody, &connector.Error{Kind: message.KindUnavailable, Message: "unavailable"}, 1, time.Now())
	r.ReplayOf = good
	e.result(t, r, decoy)

	// A genuine failure, then decoys that claim to be its replay: one by
	// Replay-Of, one with the very message ID replay would use.
	failed := e.request(t, "", failedBody, nil)
	failureSeq := e.failure(t, "", failedBody, message.KindUnavailable, failed)
	h = nats.Header{}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(failed, 10))
	e.request(t, "", "alert_other", h)
	s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	identity := strconv.FormatInt(s.CachedInfo().Created.UnixNano(), 36)
	forged := nats.Header{}
	forged.Set(message.HeaderReplayOf, strconv.FormatUint(failed, 10))
	forged.Set(message.HeaderMsgID, replayID{source: failed, answers: failureSeq}.String(identity))
	e.request(t, "", "alert_forged", forged)

	before := e.lastSeq(t, e.cfg.RequestStream)
	e.replay(t, ReplayOptions{Failed: true})
	msgs := e.requestsAfter(t, before)
	byBody := map[string]int{}
	for _, m := range msgs {
		byBody[string(m.Data)]++
		if string(m.Data) == failedBody && m.Header.Get(message.HeaderReplayOf) != strconv.FormatUint(failed, 10) {
			t.Errorf("the replay of %d says Replay-Of %s", failed, m.Header.Get(message.HeaderReplayOf))
		}
	}
	if byBody[succeededBody] != 0 {
		t.Errorf("republished the request that succeeded")
	}
	if byBody[failedBody] != 1 {
		t.Errorf("republished the genuine failure %d times, want 1", byBody[failedBody])
	}
	if byBody[decoyBody] != 1 || len(msgs) != 2 {
		t.Errorf("republished %v, want the genuine failure and the decoy's own request once each", byBody)
	}

	// The genuine copy now answers the failure: a second run leaves it.
	before = e.lastSeq(t, e.cfg.RequestStream)
	e.replay(t, ReplayOptions{Failed: true})
	if n := len(e.requestsAfter(t, before)); n != 0 {
		t.Errorf("second run republished %d", n)
	}
}

// TestReplayInterrupted: a run stopped midway says so, and every copy it
// sent is accounted for, the ones waiting for their acknowledgement too.
func TestReplayInterrupted(t *testing.T) {
	e := newTestEnv(t, nil)
	for i := range 10 {
		e.request(t, "", "alert_"+strconv.Itoa(i), nil)
	}
	before := e.lastSeq(t, e.cfg.RequestStream)
	r, err := NewReplay(t.Context(), e.js, e.cfg, ReplayOptions{FromSeq: 1, Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	items, err := r.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var events []ReplayEvent
	err = r.Republish(ctx, items, func(ev ReplayEvent) {
		events = append(events, ev)
		if len(events) == 3 {
			cancel()
		}
	})
	if err == nil || !strings.HasPrefix(err.Error(), "replay interrupted: ") {
		t.Fatalf("error %v, want the run interrupted", err)
	}
	stored := len(e.requestsAfter(t, before))
	sum := r.Summary()
	if stored < 3 || stored == len(items) || sum.Republished != stored || len(events) != stored || sum.Failed != 0 {
		t.Errorf("stored %d copies of %d; reported %d events, summary %+v", stored, len(items), len(events), sum)
	}
}

// TestRangeReplaysAtOnceStoreOneCopy: a second range replay of the same
// requests, started once the first has published its copies (within the
// request stream's duplicate window), stores no second copy.
func TestRangeReplaysAtOnceStoreOneCopy(t *testing.T) {
	e := newTestEnv(t, nil)
	a := e.request(t, "", "alert_a", nil)
	b := e.request(t, "", "alert_b", nil)
	before := e.lastSeq(t, e.cfg.RequestStream)
	if _, sum := e.replay(t, ReplayOptions{FromSeq: a, ToSeq: b}); sum.Republished != 2 {
		t.Fatalf("first run: %+v", sum)
	}
	if events, sum := e.replay(t, ReplayOptions{FromSeq: a, ToSeq: b}); sum.Republished != 0 || sum.Skipped[SkipReplayedConcurrently] != 2 {
		t.Errorf("second run: %+v, %+v", events, sum)
	}
	if n := len(e.requestsAfter(t, before)); n != 2 {
		t.Errorf("two runs stored %d copies, want 2", n)
	}
}
