package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// opsEnv is a JetStream server with the service's topology, and the
// environment of a client command that uses it.
type opsEnv struct {
	vars map[string]string
	cfg  *config.Config
	js   jetstream.JetStream
}

func newOpsEnv(t *testing.T, provision bool) *opsEnv {
	t.Helper()
	_, url := testenv.EmbeddedJetStream(t)
	vars := map[string]string{
		"NATS_URL":             url,
		"LOG_FORMAT":           "json",
		"LOG_LEVEL":            "warn",
		"DEFENDER_RATE_LIMITS": "100/1m,1500/1h",
	}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	_, js := testenv.Connect(t, url)
	if provision {
		if err := broker.NewTopology(cfg).Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	return &opsEnv{vars: vars, cfg: cfg, js: js}
}

// run runs the binary's command in-process and returns its exit status and
// output.
func (o *opsEnv) run(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = exitCode(&errOut, run(ctx, args, config.MapEnv(o.vars), strings.NewReader(""), &out, &errOut))
	return code, out.String(), errOut.String()
}

func (o *opsEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := o.run(t.Context(), args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

func (o *opsEnv) request(t *testing.T, body string, header nats.Header) uint64 {
	t.Helper()
	ack, err := o.js.PublishMsg(t.Context(), &nats.Msg{Subject: o.cfg.RequestSubject, Data: []byte(body), Header: header})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// result stores r as the service would for the request at seq.
func (o *opsEnv) result(t *testing.T, r *message.Result, seq uint64) {
	t.Helper()
	r.RequestSequence = seq
	subject := o.cfg.SuccessSubject
	if r.Status == message.StatusFailure {
		subject = o.cfg.FailureSubject
	}
	if r.Tenant != "" {
		subject += "." + r.Tenant
	}
	stored := time.Time{}
	if s, err := o.js.Stream(t.Context(), o.cfg.RequestStream); err == nil {
		if m, err := s.GetMsg(t.Context(), seq); err == nil {
			stored = m.Time
		}
	}
	msg, err := r.Message(subject, message.ResultMsgID(o.cfg.RequestStream, seq, stored), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
}

func (o *opsEnv) failure(t *testing.T, alertID string, kind message.Kind, seq, replayOf uint64) {
	t.Helper()
	r := message.Failure(alertID, &connector.Error{Kind: kind, Message: string(kind)}, 1, time.Now())
	r.ReplayOf = replayOf
	o.result(t, r, seq)
}

// requests returns the request messages stored after seq.
func (o *opsEnv) requestsAfter(t *testing.T, seq uint64) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq
	var msgs []*jetstream.RawStreamMsg
	for n := seq + 1; n <= last; n++ {
		m, err := s.GetMsg(t.Context(), n)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == o.cfg.RequestSubject {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

func (o *opsEnv) lastRequestSeq(t *testing.T) uint64 {
	t.Helper()
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

func replayOf(t *testing.T, m *jetstream.RawStreamMsg) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.Header.Get(message.HeaderReplayOf), 10, 64)
	if err != nil {
		t.Fatalf("request %d has no Replay-Of header: %v", m.Sequence, m.Header)
	}
	return n
}

func TestReplayUsageErrors(t *testing.T) {
	tests := [][]string{
		{},
		{"--until", "1h"},
		{"--failed", "--from-seq", "3"},
		{"--kind", "unavailable"},
		{"--alert", "abc", "--from-seq", "1"},
		{"--from-seq", "2", "--since", "1h"},
		{"--to-seq", "5"},
		{"--from-seq", "0"},
		{"--from-seq", "5", "--to-seq", "4"},
		{"--failed", "--kind", "unavailable,nope"},
		{"--failed", "--alert", "../machines"},
		{"--failed", "--since", "yesterday"},
		{"--failed", "--since", "-1h"},
		{"--failed", "--since", "1h", "--until", "2h"},
		{"--failed", "--rate", "0"},
		{"--failed", "extra"},
		{"--bogus"},
	}
	o := &opsEnv{vars: map[string]string{}}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := o.run(t.Context(), append([]string{"replay"}, args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
		})
	}
}

func TestReplayFlagsForms(t *testing.T) {
	now := time.Now()
	parse := func(args ...string) (*ops.ReplayOptions, error) {
		fs := flag.NewFlagSet("replay", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := defineReplayFlags(fs, now)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return f.options(fs)
	}
	o, err := parse("--failed", "--kind", "unavailable, throttled", "--since", "2h", "--until", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Failed || len(o.Kinds) != 2 || !o.Kinds[message.KindThrottled] || !o.Since.Equal(now.Add(-2*time.Hour)) || !o.Until.Equal(now.Add(-time.Hour)) {
		t.Errorf("options %+v", o)
	}
	if o, err = parse("--from-seq", "7", "--to-seq", "9"); err != nil || o.FromSeq != 7 || o.ToSeq != 9 || o.Failed {
		t.Errorf("options %+v, %v", o, err)
	}
	if o, err = parse("--since", "2026-11-26T08:30:00Z"); err != nil || o.Since.IsZero() || !o.Until.IsZero() {
		t.Errorf("options %+v, %v", o, err)
	}
}

func TestReplayFailedRepublishesOriginals(t *testing.T) {
	o := newOpsEnv(t, true)
	h := nats.Header{}
	h.Set(message.HeaderCorrelationID, "siem-42")
	h.Set(message.HeaderTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set(message.HeaderMsgID, "publisher-dedup-1")
	bodyA := `{"alertId":"da637472900382838869_1364969609"}`
	seqA := o.request(t, bodyA, h)
	seqB := o.request(t, "636688558380765161_2136280442", nil)
	seqC := o.request(t, "da637551227677560813_-961444813", nil)
	seqD := o.request(t, "da637200417169017725_183736971", nil)
	o.failure(t, "da637472900382838869_1364969609", message.KindUnavailable, seqA, 0)
	o.failure(t, "636688558380765161_2136280442", message.KindNotFound, seqB, 0)
	o.result(t, message.Success("da637551227677560813_-961444813", nil, 1, false, time.Now()), seqC)
	o.failure(t, "da637200417169017725_183736971", message.KindThrottled, seqD, 0)
	before := o.lastRequestSeq(t)

	out := o.mustRun(t, "replay", "--failed", "--kind", "unavailable,throttled", "--rate", "1000")
	msgs := o.requestsAfter(t, before)
	if len(msgs) != 2 {
		t.Fatalf("republished %d requests, want 2; output:\n%s", len(msgs), out)
	}
	a := msgs[0]
	if string(a.Data) != bodyA || replayOf(t, a) != seqA {
		t.Errorf("first replay %q Replay-Of %d, want the body of %d", a.Data, replayOf(t, a), seqA)
	}
	if a.Header.Get(message.HeaderCorrelationID) != "siem-42" || a.Header.Get(message.HeaderTraceparent) != h.Get(message.HeaderTraceparent) {
		t.Errorf("original headers not kept: %v", a.Header)
	}
	if id := a.Header.Get(message.HeaderMsgID); !strings.HasPrefix(id, "replay-") {
		t.Errorf("Nats-Msg-Id %q, want replay's own", id)
	}
	if replayOf(t, msgs[1]) != seqD {
		t.Errorf("second replay is of %d, want %d", replayOf(t, msgs[1]), seqD)
	}
	if !strings.Contains(out, "found 2 failure results (1 more in the time range did not match --kind/--alert); republished 2, skipped 0") {
		t.Errorf("summary missing:\n%s", out)
	}
	if n := countLines(out, "republished "); n != 2 {
		t.Errorf("want one line per request:\n%s", out)
	}
}

func TestReplayFailedTwiceRepublishesNothingNew(t *testing.T) {
	o := newOpsEnv(t, true)
	const alert = "da637472900382838869_1364969609"
	seq := o.request(t, alert, nil)
	o.failure(t, alert, message.KindUnavailable, seq, 0)

	o.mustRun(t, "replay", "--failed")
	after1 := o.lastRequestSeq(t)
	// The replay has no result yet: a second run leaves it alone.
	out := o.mustRun(t, "replay", "--failed")
	if n := len(o.requestsAfter(t, after1)); n != 0 {
		t.Fatalf("second run republished %d requests; output:\n%s", n, out)
	}
	if !strings.Contains(out, ops.SkipReplayPending) {
		t.Errorf("second run does not say why it skipped:\n%s", out)
	}
	// The replay succeeded: a third run leaves it alone too.
	o.result(t, message.Success(alert, []string{"www.example.com"}, 1, false, time.Now()), after1)
	out = o.mustRun(t, "replay", "--failed")
	if n := len(o.requestsAfter(t, after1)); n != 0 {
		t.Fatalf("third run republished %d requests; output:\n%s", n, out)
	}
	if !strings.Contains(out, ops.SkipSucceededSince) {
		t.Errorf("third run does not say why it skipped:\n%s", out)
	}
}

func TestReplayFailedAgainAfterTheReplayFailed(t *testing.T) {
	o := newOpsEnv(t, true)
	const alert = "da637472900382838869_1364969609"
	seq := o.request(t, alert, nil)
	o.failure(t, alert, message.KindUnavailable, seq, 0)
	o.mustRun(t, "replay", "--failed")
	replay := o.lastRequestSeq(t)
	o.failure(t, alert, message.KindUnavailable, replay, seq)

	out := o.mustRun(t, "replay", "--failed")
	msgs := o.requestsAfter(t, replay)
	if len(msgs) != 1 || replayOf(t, msgs[0]) != seq {
		t.Fatalf("want one replay of the original %d; output:\n%s", seq, out)
	}
	if !strings.Contains(out, "1 "+ops.SkipReplayFailed) {
		t.Errorf("the first failure is not reported as replayed already:\n%s", out)
	}
}

func TestReplayDryRunPublishesNothing(t *testing.T) {
	o := newOpsEnv(t, true)
	seq := o.request(t, "abc", nil)
	o.failure(t, "abc", message.KindUnavailable, seq, 0)
	before := o.lastRequestSeq(t)
	for _, args := range [][]string{{"--failed"}, {"--from-seq", "1"}, {"--since", "1h"}} {
		out := o.mustRun(t, append([]string{"replay", "--dry-run"}, args...)...)
		if !strings.Contains(out, "would republish") || !strings.Contains(out, "dry run: nothing was published") {
			t.Errorf("%v: output:\n%s", args, out)
		}
	}
	if n := len(o.requestsAfter(t, before)); n != 0 {
		t.Fatalf("dry run published %d requests", n)
	}
}

func TestReplayStoredRange(t *testing.T) {
	o := newOpsEnv(t, true)
	var seqs []uint64
	for _, id := range []string{"a1", "a2", "a3", "a4"} {
		seqs = append(seqs, o.request(t, id, nil))
		// The request stream also captures the advisories: never replayed.
		if _, err := o.js.Publish(t.Context(), broker.MaxDeliveriesSubject(o.cfg.RequestStream, o.cfg.ConsumerName), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	before := o.lastRequestSeq(t)
	out := o.mustRun(t, "replay", "--from-seq", strconv.FormatUint(seqs[1], 10), "--to-seq", strconv.FormatUint(seqs[2]+1, 10))
	msgs := o.requestsAfter(t, before)
	if len(msgs) != 2 || replayOf(t, msgs[0]) != seqs[1] || replayOf(t, msgs[1]) != seqs[2] || string(msgs[1].Data) != "a3" {
		t.Fatalf("want replays of %d and %d; output:\n%s", seqs[1], seqs[2], out)
	}
	if !strings.Contains(out, "found 2 stored requests; republished 2, skipped 0") {
		t.Errorf("summary:\n%s", out)
	}

	// --since: every stored request of the period, the replays too, each
	// once, but those replayed within the duplicate window, by the run above.
	before = o.lastRequestSeq(t)
	out = o.mustRun(t, "replay", "--since", "1h")
	if n := len(o.requestsAfter(t, before)); n != 4 || !strings.Contains(out, "skipped 2 (2 "+ops.SkipReplayedConcurrently+")") {
		t.Fatalf("--since 1h republished %d, want 4; output:\n%s", n, out)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out = o.mustRun(t, "replay", "--since", future)
	if !strings.Contains(out, "found 0 stored requests") {
		t.Errorf("--since in the future:\n%s", out)
	}
}

// TestReplayIgnoresFailuresOfRequestsNoLongerStored: a failure result
// whose request is gone cannot be checked: replay ignores it, and says so.
func TestReplayIgnoresFailuresOfRequestsNoLongerStored(t *testing.T) {
	o := newOpsEnv(t, true)
	seq := o.request(t, "gone", nil)
	o.failure(t, "gone", message.KindUnavailable, seq, 0)
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(t.Context(), seq); err != nil {
		t.Fatal(err)
	}
	before := o.lastRequestSeq(t)
	out := o.mustRun(t, "replay", "--failed", "--alert", "gone")
	if n := len(o.requestsAfter(t, before)); n != 0 {
		t.Fatalf("republished %d", n)
	}
	if !strings.Contains(out, "found 0 failure results") || !strings.Contains(out, "1 messages on result subjects were not written by the service for a stored request") {
		t.Errorf("output:\n%s", out)
	}
}

// syncBuffer is an output that a command writes while the test reads it.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until cond holds for the buffer's content.
func (b *syncBuffer) waitFor(t *testing.T, what string, cond func(string) bool) string {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		if s := b.String(); cond(s) {
			return s
		}
		select {
		case <-b.changed:
		case <-timer.C:
			t.Fatalf("no %s within 10s; output:\n%s", what, b.String())
		}
	}
}

func json2map(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("line %q is not JSON: %v", line, err)
	}
	return m
}

// countLines counts the lines of out that start with prefix.
func countLines(out, prefix string) int {
	n := 0
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

func TestReplayIsPaced(t *testing.T) {
	o := newOpsEnv(t, true)
	for i := range 10 {
		o.request(t, "p"+strconv.Itoa(i), nil)
	}
	before := o.lastRequestSeq(t)
	start := time.Now()
	// 20 a second with a burst of 2: the last of ten goes out 400ms in.
	out := o.mustRun(t, "replay", "--from-seq", "1", "--rate", "20")
	if elapsed := time.Since(start); elapsed < 350*time.Millisecond {
		t.Errorf("ten requests at 20/s took %v", elapsed)
	}
	if n := len(o.requestsAfter(t, before)); n != 10 {
		t.Fatalf("republished %d, want 10; output:\n%s", n, out)
	}
}

func TestProgressKeepsOutOfTheLines(t *testing.T) {
	var term bytes.Buffer
	p := &progress{w: &term, clear: true}
	p.draw("replaying 1/3")
	if !strings.Contains(term.String(), "replaying 1/3") {
		t.Fatalf("progress %q", term.String())
	}
	p.println(&term, "a line")
	if !strings.HasSuffix(term.String(), "\r\x1b[Ka line\n") {
		t.Errorf("the progress line is not cleared before output: %q", term.String())
	}
	p.draw("")

	// Without a terminal nothing is drawn.
	var out bytes.Buffer
	q := newProgress(&out, &out)
	q.draw("checking 1/1")
	q.println(&out, "x")
	q.draw("")
	if out.String() != "x\n" {
		t.Errorf("output %q, want only the line", out.String())
	}
}
