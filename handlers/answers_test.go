package handlers

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

const probeSubj = "t.probe"

// answersEnv is a result stream with a short duplicate window, the bucket of
// records, and a service with both.
type answersEnv struct {
	js      jetstream.JetStream
	st      jetstream.Stream
	answers *KVAnswers
	svc     *Service
	calls   atomic.Int32
	window  time.Duration
}

func newAnswersEnv(t *testing.T) *answersEnv {
	t.Helper()
	js, _ := jetStream(t)
	e := &answersEnv{js: js, window: 200 * time.Millisecond}
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "SHORT", Subjects: []string{"s.success", "s.failure", probeSubj}, Duplicates: e.window})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "answered", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.answers = st, NewKVAnswers(kv, js, "SHORT")
	lookup := lookupFunc(func(context.Context, string) (connector.Result, error) {
		e.calls.Add(1)
		return connector.Result{Domains: []string{"www.example.com"}, Attempts: 1}, nil
	})
	e.svc, err = New(lookup, js, "s.success", "s.failure", WithClock(func() time.Time { return testNow }), WithAnswers(e.answers))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// forgetDuplicates waits until the result stream's duplicate window has
// passed for everything stored so far: a probe ID published now is no
// longer known once the window is over.
func (e *answersEnv) forgetDuplicates(t *testing.T) {
	t.Helper()
	id := "probe-" + time.Now().String()
	probe := func() bool {
		ack, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: probeSubj, Header: nats.Header{nats.MsgIdHdr: {id}}})
		if err != nil {
			t.Fatal(err)
		}
		return !ack.Duplicate
	}
	probe()
	testenv.Eventually(t, 10*time.Second, e.window/4, probe, "the duplicate window to pass")
}

func (e *answersEnv) results(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	var out []*jetstream.RawStreamMsg
	for _, m := range stored(t, e.st) {
		if m.Subject != probeSubj {
			out = append(out, m)
		}
	}
	return out
}

// TestRedeliveryAfterDuplicateWindowStoresNoSecondResult: the first delivery
// stored its result and crashed before the acknowledgement; the request
// comes back after the result stream's duplicate window. Its record
// answers: no second result, no second Defender call, and the hook runs
// again with the stored result.
func TestRedeliveryAfterDuplicateWindowStoresNoSecondResult(t *testing.T) {
	e := newAnswersEnv(t)
	stamp := time.Unix(0, 1764000000123456789)
	first := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 7, Stored: stamp, NumDelivered: 1, MaxDeliver: 10}
	// The first delivery: stored, then the process dies (no hook, no ack).
	if out := e.svc.Handle(t.Context(), first); !out.Stored || out.Duplicate {
		t.Fatalf("first delivery: %+v", out)
	}
	e.forgetDuplicates(t)

	hookOut := filepath.Join(t.TempDir(), "hook.log")
	hooks, err := NewHooks("tee -a "+hookOut, "", 5*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	handler := consumer.Chain(e.svc.Handle, hooks.Middleware())
	second := *first
	second.NumDelivered = 2
	out := handler(t.Context(), &second)
	if out.Action != consumer.Ack || !out.Stored || !out.Duplicate || out.Result == nil || out.Result.Delivery != 1 {
		t.Fatalf("redelivery: %+v, want an ack with the result stored by delivery 1", out)
	}
	if n := len(e.results(t)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("%d Defender calls, want 1", n)
	}
	data, _ := os.ReadFile(hookOut)
	if strings.Count(string(data), `"status"`) != 1 || !strings.Contains(string(data), `"delivery":1`) {
		t.Errorf("hook input %s, want the stored result once", data)
	}

	// Another request at the same sequence of a re-created stream is new.
	other := *first
	other.Stored = stamp.Add(time.Hour)
	if out := e.svc.Handle(t.Context(), &other); !out.Stored || out.Duplicate {
		t.Errorf("request of a re-created stream: %+v, want a new result", out)
	}
}

// TestDuplicateWithoutRecordIsRecorded: the first delivery stored its result
// and crashed before writing its record; a redelivery within the duplicate
// window finds the result by its message ID, writes the record and hands
// the stored result to the hook.
func TestDuplicateWithoutRecordIsRecorded(t *testing.T) {
	e := newAnswersEnv(t)
	stamp := time.Unix(0, 1764000000123456789)
	stored := message.Success("abc", []string{"first.example.com"}, 1, false, testNow)
	stored.RequestSequence, stored.Delivery = 9, 1
	msg, err := stored.Message("s.success", message.ResultMsgID("REQ", 9, stamp), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	d := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 9, Stored: stamp, NumDelivered: 2, MaxDeliver: 10}
	out := e.svc.Handle(t.Context(), d)
	if !out.Duplicate || out.Result == nil || len(out.Result.Domains) != 1 || out.Result.Domains[0] != "first.example.com" {
		t.Fatalf("redelivery within the window: %+v, want the stored result", out)
	}
	if _, ok, err := e.answers.Find(t.Context(), message.AnswerKey(9, stamp)); !ok || err != nil {
		t.Errorf("record after a duplicate: found %v (%v), want it written", ok, err)
	}
}

// TestAnswerLookupsWriteNoRecord: a service whose deliveries acknowledge at
// once (no hook) writes no record, but still finds one that a service with
// hooks wrote before it.
func TestAnswerLookupsWriteNoRecord(t *testing.T) {
	e := newAnswersEnv(t)
	lookupOnly, err := New(lookupFunc(func(context.Context, string) (connector.Result, error) {
		e.calls.Add(1)
		return connector.Result{Domains: []string{"www.example.com"}, Attempts: 1}, nil
	}), e.js, "s.success", "s.failure", WithClock(func() time.Time { return testNow }), WithAnswerLookups(e.answers))
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Unix(0, 1764000000123456789)
	d := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 8, Stored: stamp, NumDelivered: 1, MaxDeliver: 10}
	if out := lookupOnly.Handle(t.Context(), d); !out.Stored {
		t.Fatalf("delivery: %+v", out)
	}
	if _, ok, err := e.answers.Find(t.Context(), message.AnswerKey(8, stamp)); ok || err != nil {
		t.Fatalf("a record was written (%v, %v) by a service that only looks them up", ok, err)
	}

	// A record written by a service with hooks answers this one's redelivery.
	first := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 9, Stored: stamp, NumDelivered: 1, MaxDeliver: 10}
	if out := e.svc.Handle(t.Context(), first); !out.Stored {
		t.Fatalf("first delivery: %+v", out)
	}
	e.forgetDuplicates(t)
	again := *first
	again.NumDelivered = 2
	out := lookupOnly.Handle(t.Context(), &again)
	if out.Action != consumer.Ack || !out.Duplicate || out.Result == nil || out.Result.Delivery != 1 {
		t.Fatalf("redelivery: %+v, want an ack with the stored result", out)
	}
	if n := e.calls.Load(); n != 2 {
		t.Errorf("%d Defender calls, want 2 (one per request)", n)
	}
}
