package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testNow = time.Date(2026, 11, 27, 9, 14, 3, 512_000_000, time.UTC)

const (
	successSubj = "t.success"
	failureSubj = "t.failure"
)

// jetStream starts an in-process nats-server with JetStream and a result
// stream that holds both result subjects.
func jetStream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	srv, _ := testenv.EmbeddedJetStream(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{successSubj, failureSubj}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return js, st
}

// lookupFunc adapts a function to Lookup.
type lookupFunc func(ctx context.Context, id string) (connector.Result, error)

func (f lookupFunc) Domains(ctx context.Context, id string) (connector.Result, error) {
	return f(ctx, id)
}

func stored(t *testing.T, st jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestHandleOutcomes(t *testing.T) {
	notFound := &connector.Error{Kind: message.KindNotFound, HTTPStatus: 404, Code: "ResourceNotFound", Message: "alert not found"}
	tests := []struct {
		name        string
		body        string
		header      nats.Header
		lookup      lookupFunc
		wantAction  consumer.Action
		wantSubject string
		wantJSON    []string // substrings of the stored result
		wantCalls   int32
	}{
		{
			name: "success",
			body: `{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`,
			lookup: func(ctx context.Context, id string) (connector.Result, error) {
				return connector.Result{Domains: []string{"www.example.com", "cdn.example.net"}, Attempts: 1}, nil
			},
			wantAction: consumer.Ack, wantSubject: successSubj, wantCalls: 1,
			wantJSON: []string{`"status":"success"`, `"domains":["www.example.com","cdn.example.net"]`, `"attempts":1`, `"cached":false`, `"correlationId":"siem-42"`, `"requestSequence":1042`, `"completedAt":"2026-11-27T09:14:03.512Z"`},
		},
		{
			name: "no domains is an empty list",
			body: "636688558380765161_2136280442",
			lookup: func(ctx context.Context, id string) (connector.Result, error) {
				return connector.Result{Attempts: 1}, nil
			},
			wantAction: consumer.Ack, wantSubject: successSubj, wantCalls: 1,
			wantJSON: []string{`"domains":[]`},
		},
		{
			name: "terminal failure",
			body: "da637551227677560813_-961444813",
			lookup: func(ctx context.Context, id string) (connector.Result, error) {
				return connector.Result{Attempts: 1}, notFound
			},
			wantAction: consumer.Ack, wantSubject: failureSubj, wantCalls: 1,
			wantJSON: []string{`"status":"failure"`, `"kind":"not_found"`, `"httpStatus":404`, `"code":"ResourceNotFound"`, `"request":"da637551227677560813_-961444813"`, `"alertId":"da637551227677560813_-961444813"`},
		},
		{
			name:        "invalid request never reaches the lookup",
			body:        "../machines",
			header:      nats.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
			wantAction:  consumer.Terminate,
			wantSubject: failureSubj,
			wantJSON:    []string{`"kind":"invalid_request"`, `"attempts":0`, `"request":"../machines"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, st := jetStream(t)
			var calls atomic.Int32
			lookup := lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
				calls.Add(1)
				return tt.lookup(ctx, id)
			})
			svc, err := New(lookup, js, successSubj, failureSubj, WithClock(func() time.Time { return testNow }))
			if err != nil {
				t.Fatal(err)
			}
			out := svc.Handle(t.Context(), &consumer.Delivery{Data: []byte(tt.body), Header: tt.header, Stream: "REQ", StreamSeq: 1042, Stored: time.Unix(0, 1764000000123456789), NumDelivered: 1, MaxDeliver: 10})
			if out.Action != tt.wantAction || !out.Stored {
				t.Fatalf("outcome %v stored=%v err=%v, want %v stored", out.Action, out.Stored, out.Err, tt.wantAction)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("lookup called %d times, want %d", got, tt.wantCalls)
			}
			msgs := stored(t, st)
			if len(msgs) != 1 {
				t.Fatalf("%d results stored, want 1", len(msgs))
			}
			m := msgs[0]
			if m.Subject != tt.wantSubject {
				t.Errorf("result on %s, want %s", m.Subject, tt.wantSubject)
			}
			for _, w := range tt.wantJSON {
				if !strings.Contains(string(m.Data), w) {
					t.Errorf("result %s lacks %s", m.Data, w)
				}
			}
			if got := m.Header.Get(message.HeaderContentType); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if got := m.Header.Get(message.HeaderMsgID); got != "result-REQ-1042-1764000000123456789" {
				t.Errorf("Nats-Msg-Id %q", got)
			}
			if tp := tt.header.Get(message.HeaderTraceparent); tp != "" && m.Header.Get(message.HeaderTraceparent) != tp {
				t.Errorf("traceparent not passed on: %q", m.Header.Get(message.HeaderTraceparent))
			}
			var r message.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			if m.Header.Get(message.HeaderResultStatus) != r.Status || (r.AlertID != "" && m.Header.Get(message.HeaderAlertID) != r.AlertID) {
				t.Errorf("headers %v do not match result %+v", m.Header, r)
			}
			if r.Status == message.StatusSuccess && (r.Error != nil || r.Request != nil) {
				t.Errorf("success result carries failure fields: %s", m.Data)
			}
			if r.Status == message.StatusFailure && (r.Domains != nil || r.Cached != nil) {
				t.Errorf("failure result carries success fields: %s", m.Data)
			}
		})
	}
}

func TestHandleSameRequestTwiceStoresOneResult(t *testing.T) {
	js, st := jetStream(t)
	lookup := lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		return connector.Result{Domains: []string{"a.example"}, Attempts: 1}, nil
	})
	svc, err := New(lookup, js, successSubj, failureSubj)
	if err != nil {
		t.Fatal(err)
	}
	for delivery := uint64(1); delivery <= 2; delivery++ {
		out := svc.Handle(t.Context(), &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 7, NumDelivered: delivery, MaxDeliver: 10})
		if out.Action != consumer.Ack {
			t.Fatalf("delivery %d: %v (%v)", delivery, out.Action, out.Err)
		}
		if delivery == 2 && !out.Duplicate {
			t.Error("second delivery's result was not recognised as a duplicate")
		}
	}
	if n := len(stored(t, st)); n != 1 {
		t.Errorf("%d results stored for one request, want 1", n)
	}
}

func TestHandleShutdownHandsBack(t *testing.T) {
	js, st := jetStream(t)
	ctx, cancel := context.WithCancel(t.Context())
	lookup := lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		cancel()
		<-ctx.Done()
		return connector.Result{Attempts: 1}, &connector.Error{Kind: message.KindUnavailable, Err: ctx.Err()}
	})
	svc, err := New(lookup, js, successSubj, failureSubj)
	if err != nil {
		t.Fatal(err)
	}
	out := svc.Handle(ctx, &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 1, NumDelivered: 1, MaxDeliver: 10})
	if out.Action != consumer.HandBack || out.Stored {
		t.Fatalf("interrupted delivery: %v stored=%v, want hand back without a result", out.Action, out.Stored)
	}
	if n := len(stored(t, st)); n != 0 {
		t.Errorf("%d results stored, want 0", n)
	}

	// On the last delivery an interrupted lookup still ends in a result.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	out = svc.Handle(ctx, &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 2, NumDelivered: 10, MaxDeliver: 10})
	if out.Action != consumer.Ack || !out.Stored || out.Result.Kind() != message.KindUnavailable {
		t.Fatalf("last delivery: %v stored=%v kind=%v, want an unavailable failure stored", out.Action, out.Stored, out.Result.Kind())
	}
}

// failingPublisher fails the first n publishes, then publishes for real.
type failingPublisher struct {
	Publisher
	fail atomic.Int32
}

func (p *failingPublisher) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if p.fail.Add(-1) >= 0 {
		return nil, nats.ErrNoResponders
	}
	return p.Publisher.PublishMsg(ctx, m, opts...)
}

func TestHandlePublishFailureRetriesLater(t *testing.T) {
	js, st := jetStream(t)
	pub := &failingPublisher{Publisher: js}
	pub.fail.Store(1)
	lookup := lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		return connector.Result{Domains: []string{"a.example"}, Attempts: 1}, nil
	})
	svc, err := New(lookup, pub, successSubj, failureSubj, WithPublishBudget(0))
	if err != nil {
		t.Fatal(err)
	}
	d := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 3, NumDelivered: 1, MaxDeliver: 10}
	out := svc.Handle(t.Context(), d)
	if out.Action != consumer.Retry || out.Delay < time.Second || out.Stored || !errors.Is(out.Err, nats.ErrNoResponders) {
		t.Fatalf("failed publish: %v delay %v stored=%v err=%v, want a delayed retry", out.Action, out.Delay, out.Stored, out.Err)
	}
	d.NumDelivered = 2
	if out := svc.Handle(t.Context(), d); out.Action != consumer.Ack || !out.Stored {
		t.Fatalf("redelivery: %v (%v)", out.Action, out.Err)
	}
	if n := len(stored(t, st)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}
}

// TestHandlePublishTriesAgainWhileStreamUnanswered: a result stream that
// does not answer for a moment (its leader lost) costs no second Defender
// call: the answer in hand is published again, and the first delivery
// stores it.
func TestHandlePublishTriesAgainWhileStreamUnanswered(t *testing.T) {
	js, st := jetStream(t)
	pub := &failingPublisher{Publisher: js}
	pub.fail.Store(3)
	var calls atomic.Int32
	lookup := lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		return connector.Result{Domains: []string{"a.example"}, Attempts: 1}, nil
	})
	svc, err := New(lookup, pub, successSubj, failureSubj)
	if err != nil {
		t.Fatal(err)
	}
	d := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 3, NumDelivered: 1, MaxDeliver: 10}
	if out := svc.Handle(t.Context(), d); out.Action != consumer.Ack || !out.Stored || out.Err != nil {
		t.Fatalf("after 3 unanswered publishes: %v stored=%v err=%v, want the result stored by this delivery", out.Action, out.Stored, out.Err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d Defender calls, want 1", n)
	}
	if n := len(stored(t, st)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}

	// Shutdown ends the attempts: the request goes back for a later delivery.
	pub.fail.Store(1000)
	ctx, cancel := context.WithCancel(t.Context())
	d.StreamSeq = 4
	go func() {
		for pub.fail.Load() > 998 {
			runtime.Gosched()
		}
		cancel()
	}()
	if out := svc.Handle(ctx, d); out.Action != consumer.Retry || out.Stored {
		t.Fatalf("unanswered publishes at shutdown: %v stored=%v, want a retry", out.Action, out.Stored)
	}
}

// signalCache is a cache that is always empty and tells when it was asked.
type signalCache struct{ asked chan struct{} }

func (c signalCache) Get(context.Context, string) ([]string, bool, error) {
	c.asked <- struct{}{}
	return nil, false, nil
}
func (c signalCache) Put(context.Context, string, []string) error { return nil }

func TestConcurrentRequestsForOneAlertShareOneCall(t *testing.T) {
	js, st := jetStream(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	var calls atomic.Int32
	lookup := lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		return connector.Result{Domains: []string{"a.example"}, Attempts: 1}, nil
	})
	cache := signalCache{asked: make(chan struct{}, 10)}
	svc, err := New(lookup, js, successSubj, failureSubj, WithCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	outs := make(chan consumer.Outcome, n)
	handle := func(seq uint64) {
		outs <- svc.Handle(t.Context(), &consumer.Delivery{Data: []byte("same_alert"), Stream: "REQ", StreamSeq: seq, NumDelivered: 1, MaxDeliver: 10})
	}
	go handle(1)
	<-cache.asked
	<-entered // the first request's call is in flight
	for seq := uint64(2); seq <= n; seq++ {
		go handle(seq)
	}
	for range n - 1 {
		<-cache.asked // the others missed the cache and go for the call
	}
	close(release)
	coalesced := 0
	for range n {
		out := <-outs
		if out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess {
			t.Fatalf("outcome %v %v", out.Action, out.Err)
		}
		if out.Result.Coalesced {
			coalesced++
			if out.Result.Attempts != 0 {
				t.Errorf("a shared answer reports %d attempts, want 0", out.Result.Attempts)
			}
		}
	}
	// Without sharing every request makes its own call; a request that the
	// scheduler held back until after the release may still make one.
	if c := calls.Load(); coalesced == 0 || int(c)+coalesced != n {
		t.Errorf("%d calls and %d shared answers for %d concurrent requests", c, coalesced, n)
	}
	if n := len(stored(t, st)); n != 5 {
		t.Errorf("%d results stored, want one per request", n)
	}
}
