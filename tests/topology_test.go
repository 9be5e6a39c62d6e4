package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestConsumerDeletedWhileDownResumes: the consumer is deleted while no
// replica runs, after a kill -9 that left one request in the middle
// without its result. The next start creates it again where processing
// stopped: the unanswered request and the new ones get their result, and no
// request that had one is sent to Defender again. A start after that with
// other CONCURRENCY, ACK_WAIT and MAX_DELIVER applies them and keeps the
// consumer's start.
func TestConsumerDeletedWhileDownResumes(t *testing.T) {
	t.Parallel()
	const slow = "resume_slow"
	ids, known := knownAlerts("resume", 25)
	known[slow] = []string{"slow.example.com"}
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: known})
	// Its first call never answers in time: the request is in hand when the
	// process is killed.
	emu.Script(slow, emulator.Answer{Delay: time.Hour})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := serviceEnv(emu, cert, srv.URL(), "CONCURRENCY=4", "LOG_LEVEL=info")
	p := testenv.StartServe(t, env)

	before := publishAll(t, js, ids[:10])
	slowSeq := publishAll(t, js, []string{slow})[0]
	after := publishAll(t, js, ids[10:20])
	waitResultCount(t, js, 20, time.Minute)
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return emu.CallsFor(slow) == 1 }, "the slow request in hand")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if c := resultCount(t, js); c != 20 {
		t.Fatalf("%d results before the restart, want 20 (all but the slow request)", c)
	}
	if err := js.DeleteConsumer(t.Context(), requestStream, consumerName); err != nil {
		t.Fatal(err)
	}
	later := publishAll(t, js, ids[20:25])
	callsBefore := emu.Calls()

	p = testenv.StartServe(t, serviceEnv(emu, cert, srv.URL(), "CONCURRENCY=2", "ACK_WAIT=5s", "MAX_DELIVER=3", "LOG_LEVEL=info"))
	got := waitResults(t, js, 26, time.Minute)
	for _, seq := range append(append(append(append([]uint64{}, before...), slowSeq), after...), later...) {
		if _, ok := got[seq]; !ok {
			t.Errorf("request %d has no result", seq)
		}
	}
	if r := got[slowSeq]; r.Status != "success" {
		t.Errorf("the request in hand at the kill: %s", r.Raw)
	}
	if calls := emu.Calls() - callsBefore; calls != 6 {
		t.Errorf("%d Defender calls after the consumer was created again, want 6 (the unanswered request and 5 new ones)", calls)
	}
	p.WaitForLine(t, "created where processing stopped", 5*time.Second)
	p.Stop(t)

	// Changed settings at the next start: applied, the start kept.
	p = testenv.StartServe(t, serviceEnv(emu, cert, srv.URL(), "CONCURRENCY=3", "ACK_WAIT=7s", "MAX_DELIVER=5", "LOG_LEVEL=info"))
	c, err := js.Consumer(t.Context(), requestStream, consumerName)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.CachedInfo().Config
	if cc.AckWait != 7*time.Second || cc.MaxDeliver != 5 || cc.MaxAckPending != broker.MaxAckPending(3) {
		t.Errorf("consumer ack wait %v, max deliver %d, max ack pending %d; want 7s, 5 and %d (CONCURRENCY=3)",
			cc.AckWait, cc.MaxDeliver, cc.MaxAckPending, broker.MaxAckPending(3))
	}
	if cc.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || cc.OptStartSeq != slowSeq {
		t.Errorf("consumer deliver policy %v from %d, want by start sequence from %d", cc.DeliverPolicy, cc.OptStartSeq, slowSeq)
	}
	extra := publishAll(t, js, []string{"resume_extra"})
	got = waitResults(t, js, 27, time.Minute)
	if _, ok := got[extra[0]]; !ok {
		t.Error("a request after the settings changed has no result")
	}
	p.Stop(t)
}

// TestProvisionNeverRewritesStreamSubjects: a replica with a mistyped
// REQUEST_SUBJECT exits non-zero naming the difference and leaves the
// shared stream's subjects as they were, so requests on the real subject
// are still stored and answered.
func TestProvisionNeverRewritesStreamSubjects(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	good := testenv.StartServe(t, serviceEnv(emu, cert, srv.URL()))
	stream, err := js.Stream(t.Context(), requestStream)
	if err != nil {
		t.Fatal(err)
	}
	wantSubjects := fmt.Sprint(stream.CachedInfo().Config.Subjects)

	typo := "defender.alerts.domain.requests"
	bad := testenv.StartService(t, testenv.BuildBinary(t), serviceEnv(emu, cert, srv.URL(), "REQUEST_SUBJECT="+typo), "serve")
	code, err := bad.Wait(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Fatalf("a replica with another REQUEST_SUBJECT exited 0:\n%s", bad.Output())
	}
	out := bad.Output()
	if !strings.Contains(out, typo) || !strings.Contains(out, requestStream) {
		t.Errorf("the error does not name the stream and the subject:\n%s", out)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(info.Config.Subjects); got != wantSubjects {
		t.Errorf("stream subjects %s, were %s", got, wantSubjects)
	}
	seq := publish(t, js, "subjects_kept", nil)
	if got := waitResults(t, js, 1, 30*time.Second); got[seq].Status != "success" {
		t.Errorf("request on the real subject: %+v", got)
	}
	good.Stop(t)
}

// TestStreamReplicasChecked: STREAM_REPLICAS outside 1..5 is a
// configuration error (exit 2 naming it); with PROVISION=false a stream
// with another replica count stops the start with an error naming both.
func TestStreamReplicasChecked(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	srv := testenv.StartNATS(t)
	bin := testenv.BuildBinary(t)
	for _, v := range []string{"0", "6", "three"} {
		p := testenv.StartService(t, bin, serviceEnv(emu, cert, srv.URL(), "STREAM_REPLICAS="+v), "serve")
		code, err := p.Wait(30 * time.Second)
		if err != nil || code != 2 || !strings.Contains(p.Output(), "STREAM_REPLICAS") {
			t.Errorf("STREAM_REPLICAS=%s: exit %d (%v), want 2 naming the variable:\n%s", v, code, err, p.Output())
		}
	}
	testenv.StartServe(t, serviceEnv(emu, cert, srv.URL())).Stop(t)
	p := testenv.StartService(t, bin, serviceEnv(emu, cert, srv.URL(), "PROVISION=false", "STREAM_REPLICAS=3"), "serve")
	code, err := p.Wait(30 * time.Second)
	if err != nil || code == 0 || !strings.Contains(p.Output(), "has 1 replicas and STREAM_REPLICAS is 3") {
		t.Errorf("PROVISION=false with another replica count: exit %d (%v):\n%s", code, err, p.Output())
	}
}
