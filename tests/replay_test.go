package tests

// End-to-end tests of replay (which kinds by default, Replay-Of from any
// publisher, two runs at once), each with the binary as a user runs it, a
// real nats-server and the emulator.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// Seed alerts of the emulator beside knownAlert, each with hosts.
const (
	seedAlertB = "da637200417169017725_183736971"
	seedAlertC = "da637551227677560813_-961444813"
	seedAlertD = "da637600000000000000_1000000001"
	// unknownAlert is a valid ID the emulator answers 404.
	unknownAlert = "da000000000000000000_404"
)

// storedRequest is a request message as the request stream stores it.
type storedRequest struct {
	Seq    uint64
	Body   string
	Header nats.Header
}

// requestsAfter reads the requests stored on REQUEST_SUBJECT after seq.
func requestsAfter(t *testing.T, js jetstream.JetStream, seq uint64) []storedRequest {
	t.Helper()
	st, err := js.Stream(t.Context(), requestStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedRequest
	for s := seq + 1; s <= lastRequestSeq(t, js); s++ {
		m, err := st.GetMsg(t.Context(), s)
		if err != nil || m.Subject != requestSubject {
			continue // deleted, or an advisory
		}
		out = append(out, storedRequest{Seq: s, Body: string(m.Data), Header: m.Header})
	}
	return out
}

// replayOf is the sequence a stored request's Replay-Of header names; 0
// when it has none.
func (r storedRequest) replayOf() uint64 {
	n, _ := strconv.ParseUint(r.Header.Get(message.HeaderReplayOf), 10, 64)
	return n
}

// describe lists stored requests for failure messages.
func describe(rs []storedRequest) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %d %q Replay-Of %q", r.Seq, r.Body, r.Header.Get(message.HeaderReplayOf))
	}
	return b.String()
}

// seededService starts the emulator with its sample alerts, an in-process
// NATS server and the service on them with extra settings; it returns the
// emulator, a JetStream context and the service's environment (for the
// operator commands).
func seededService(t *testing.T, extra ...string) (*emulator.Server, jetstream.JetStream, []string) {
	t.Helper()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	env := serviceEnv(emu, cert, natsURL, extra...)
	testenv.StartServe(t, env)
	return emu, js, env
}

// failWhileDown publishes bodies while Defender answers 503, waits until
// the result stream holds total results, and brings Defender back: each of
// them ends as an unavailable failure.
func failWhileDown(t *testing.T, emu *emulator.Server, js jetstream.JetStream, total int, bodies []string, headers []nats.Header) []uint64 {
	t.Helper()
	emu.SetOutage(http.StatusServiceUnavailable)
	defer emu.SetOutage(0)
	seqs := make([]uint64, len(bodies))
	for i, b := range bodies {
		var h nats.Header
		if headers != nil {
			h = headers[i]
		}
		seqs[i] = publish(t, js, b, h)
	}
	got := waitResults(t, js, total, 30*time.Second)
	for _, seq := range seqs {
		if r := got[seq]; r.Status != message.StatusFailure || r.Kind() != message.KindUnavailable {
			t.Fatalf("request %d during the outage: %s, want an unavailable failure", seq, r.Raw)
		}
	}
	return seqs
}

// TestReplayDefaultKindsEndToEnd: real failures of the running
// service, one not_found, one invalid_request and one unavailable:
// `replay --failed` without --kind republishes only the unavailable one and
// says two were left out; `--kind all` then takes the other two.
func TestReplayDefaultKindsEndToEnd(t *testing.T) {
	t.Parallel()
	emu, js, env := seededService(t, "RETRY_MAX_ELAPSED=300ms")

	missing := publish(t, js, unknownAlert, nil)
	invalid := publish(t, js, "../machines", nil)
	got := waitResults(t, js, 2, 30*time.Second)
	if m, i := got[missing], got[invalid]; m.Kind() != message.KindNotFound || i.Kind() != message.KindInvalidRequest {
		t.Fatalf("results %s, want not_found and invalid_request", kinds(got))
	}
	down := failWhileDown(t, emu, js, 3, []string{knownAlert}, nil)[0]
	requestsAllAcked(t, js, 10*time.Second)

	before := lastRequestSeq(t, js)
	code, out := opsCommand(t, env, "replay", "--failed")
	if code != 0 {
		t.Fatalf("replay --failed: exit %d\n%s", code, out)
	}
	copies := requestsAfter(t, js, before)
	if len(copies) != 1 || copies[0].replayOf() != down || copies[0].Body != knownAlert {
		t.Fatalf("replay --failed republished:%s\nwant only request %d, the unavailable failure\n%s", describe(copies), down, out)
	}
	if !strings.Contains(out, "found 1 failure results (2 more in the time range are of kinds a replay cannot fix") ||
		!strings.Contains(out, "--kind all takes every kind") || !strings.Contains(out, "republished 1, skipped 0") {
		t.Errorf("the summary does not say what was left out:\n%s", out)
	}
	if r := waitResults(t, js, 4, 30*time.Second)[copies[0].Seq]; r.Status != message.StatusSuccess || r.ReplayOf != down {
		t.Fatalf("replay of %d: %s, want a success", down, r.Raw)
	}
	if n := emu.CallsFor(unknownAlert); n != 1 {
		t.Errorf("%d Defender calls for the alert Defender does not know, want 1", n)
	}

	before = lastRequestSeq(t, js)
	code, out = opsCommand(t, env, "replay", "--failed", "--kind", "all")
	if code != 0 {
		t.Fatalf("replay --failed --kind all: exit %d\n%s", code, out)
	}
	copies = requestsAfter(t, js, before)
	replayed := map[uint64]string{}
	for _, c := range copies {
		replayed[c.replayOf()] = c.Body
	}
	if len(copies) != 2 || replayed[missing] != unknownAlert || replayed[invalid] != "../machines" {
		t.Errorf("--kind all republished:%s\nwant requests %d and %d\n%s", describe(copies), missing, invalid, out)
	}
	if !strings.Contains(out, "found 3 failure results; republished 2, skipped 1 (1 succeeded since it failed)") {
		t.Errorf("summary:\n%s", out)
	}
	waitResults(t, js, 6, 30*time.Second)
}

// TestReplayOfFromAnyPublisher: Replay-Of is a header anyone
// can set. A failing request published with Replay-Of naming a request that
// succeeded does not make `replay --failed` republish that request (its own
// request is republished instead); a request with Replay-Of naming a
// genuine failure does not hide that failure from replay.
func TestReplayOfFromAnyPublisher(t *testing.T) {
	t.Parallel()
	emu, js, env := seededService(t, "RETRY_MAX_ELAPSED=300ms")

	succeeded := publish(t, js, knownAlert, nil)
	if r := waitResults(t, js, 1, 30*time.Second)[succeeded]; r.Status != message.StatusSuccess {
		t.Fatalf("request %d: %s, want a success", succeeded, r.Raw)
	}
	naming := func(seq uint64) nats.Header {
		return nats.Header{message.HeaderReplayOf: {strconv.FormatUint(seq, 10)}}
	}
	// A genuine failure, and a decoy failure that claims to replay the
	// request that succeeded.
	down := failWhileDown(t, emu, js, 3, []string{seedAlertB, seedAlertC}, []nats.Header{nil, naming(succeeded)})
	genuine, decoy := down[0], down[1]
	// A decoy that claims to replay the genuine failure, and succeeds.
	hider := publish(t, js, seedAlertD, naming(genuine))
	if r := waitResults(t, js, 4, 30*time.Second)[hider]; r.Status != message.StatusSuccess {
		t.Fatalf("request %d: %s, want a success", hider, r.Raw)
	}
	requestsAllAcked(t, js, 10*time.Second)

	before := lastRequestSeq(t, js)
	code, out := opsCommand(t, env, "replay", "--failed")
	if code != 0 {
		t.Fatalf("replay --failed: exit %d\n%s", code, out)
	}
	copies := requestsAfter(t, js, before)
	byOrigin := map[uint64]storedRequest{}
	for _, c := range copies {
		if c.replayOf() == succeeded || c.Body == knownAlert {
			t.Errorf("replay republished request %d, which succeeded, on a decoy's word: %d %q", succeeded, c.Seq, c.Body)
		}
		byOrigin[c.replayOf()] = c
	}
	if c, ok := byOrigin[genuine]; !ok || c.Body != seedAlertB {
		t.Errorf("the genuine failure %d was not republished", genuine)
	}
	if c, ok := byOrigin[decoy]; !ok || c.Body != seedAlertC {
		t.Errorf("the decoy's own failed request %d was not republished", decoy)
	}
	if len(copies) != 2 {
		t.Errorf("replay republished:%s\nwant requests %d and %d\n%s", describe(copies), genuine, decoy, out)
	}
	if t.Failed() {
		t.Logf("replay output:\n%s", out)
	}
	all := waitResults(t, js, 4+len(copies), 30*time.Second)
	if c, ok := byOrigin[genuine]; ok {
		if r := all[c.Seq]; r.Status != message.StatusSuccess || r.ReplayOf != genuine || r.AlertID != seedAlertB {
			t.Errorf("replay of the genuine failure: %s, want a success", r.Raw)
		}
	}
}

// TestConcurrentReplaysRepublishOnce: two `replay --failed`
// runs started at once, each paced so that they overlap, store one copy of
// each failure's request between them, and each failure gets one result
// of its replay.
func TestConcurrentReplaysRepublishOnce(t *testing.T) {
	t.Parallel()
	const n = 20
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	env := serviceEnv(emu, cert, natsURL, "RETRY_MAX_ELAPSED=300ms", "CONCURRENCY=20")
	testenv.StartServe(t, env)
	failed := failWhileDown(t, emu, js, n, alertIDs("concurrent", n), nil)
	requestsAllAcked(t, js, 10*time.Second)

	before := lastRequestSeq(t, js)
	bin := testenv.BuildBinary(t)
	// At 10 a second, each run takes about 2 s to publish its 20 copies,
	// so both plan before either has published much.
	runs := []*testenv.Process{
		testenv.StartService(t, bin, env, "replay", "--failed", "--rate", "10"),
		testenv.StartService(t, bin, env, "replay", "--failed", "--rate", "10"),
	}
	for i, p := range runs {
		if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("run %d: exit %d (%v)\n%s", i, code, err, p.Output())
		}
	}
	copies := requestsAfter(t, js, before)
	per := map[uint64]int{}
	for _, c := range copies {
		per[c.replayOf()]++
	}
	for _, seq := range failed {
		if per[seq] != 1 {
			t.Errorf("request %d republished %d times, want once", seq, per[seq])
		}
	}
	if len(copies) != n {
		t.Fatalf("two runs at once stored %d copies, want %d\n%s", len(copies), n, outputOf(runs...))
	}
	all := waitResults(t, js, 2*n, 30*time.Second)
	for _, c := range copies {
		if r := all[c.Seq]; r.Status != message.StatusSuccess {
			t.Errorf("replay of %d: %s, want a success", c.replayOf(), r.Raw)
		}
	}
	requestsAllAcked(t, js, 10*time.Second)
}
