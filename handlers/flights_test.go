package handlers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

const (
	claimSubjects  = "t.flights"
	answerSubjects = "t.flight_answers"
	claimsStream   = "FLIGHTS"
)

// flightsEnv is one nats-server with the result and claims streams, for
// services that stand for replicas, each on a connection of its own.
type flightsEnv struct {
	srv     *server.Server
	results jetstream.Stream
	hold    time.Duration
}

func newFlightsEnv(t *testing.T, hold time.Duration) *flightsEnv {
	t.Helper()
	srv, _ := testenv.EmbeddedJetStream(t)
	e := &flightsEnv{srv: srv, hold: hold}
	_, js := e.connect(t)
	var err error
	if e.results, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{successSubj, failureSubj}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// As broker.FlightsStream makes it.
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: claimsStream, Subjects: []string{claimSubjects + ".*"}, Storage: jetstream.MemoryStorage,
		MaxMsgsPerSubject: 1, MaxAge: hold, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true, AllowDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *flightsEnv) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// replica is a Service with shared flights on a connection of its own.
func (e *flightsEnv) replica(t *testing.T, lookup Lookup, opts ...Option) *Service {
	t.Helper()
	nc, js := e.connect(t)
	f, err := NewSharedFlights(js, nc, claimsStream, claimSubjects, answerSubjects, e.hold, WithFlightsTiming(2*time.Second, 50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(lookup, js, successSubj, failureSubj, append([]Option{WithSharedFlights(f)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// waiting reports whether a replica waits for the answer on key's call.
func (e *flightsEnv) waiting(key string) bool {
	return e.srv.GlobalAccount().SubscriptionInterest(answerSubjects + "." + FlightToken(key))
}

func delivery(alert string, seq uint64) *consumer.Delivery {
	return &consumer.Delivery{Data: []byte(alert), Stream: "REQ", StreamSeq: seq, NumDelivered: 1, MaxDeliver: 10}
}

// blockingLookup answers after release is closed, counting its calls.
func blockingLookup(calls *atomic.Int32, entered chan<- struct{}, release <-chan struct{}, res connector.Result, err error) Lookup {
	return lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return connector.Result{}, ctx.Err()
		}
		return res, err
	})
}

// Two replicas: a request on the second, while the first asks Defender for
// the same alert, takes the first's answer; one call in all.
func TestSharedFlightsOneCallAcrossReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  connector.Result
		err  error
	}{
		{"success", connector.Result{Domains: []string{"a.example", "b.example"}, Attempts: 1}, nil},
		{"failure", connector.Result{Attempts: 1}, &connector.Error{Kind: message.KindNotFound, HTTPStatus: 404, Code: "ResourceNotFound", Message: "alert not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFlightsEnv(t, 10*time.Second)
			var calls atomic.Int32
			entered, release := make(chan struct{}, 4), make(chan struct{})
			lookup := blockingLookup(&calls, entered, release, tc.res, tc.err)
			first, second := e.replica(t, lookup), e.replica(t, lookup)
			outs := make(chan consumer.Outcome, 2)
			go func() { outs <- first.Handle(t.Context(), delivery("same_alert", 1)) }()
			<-entered
			// The holder subscribed too, before it claimed.
			eventually(t, "the holder no longer listens", func() bool { return !e.waiting("same_alert") })
			go func() { outs <- second.Handle(t.Context(), delivery("same_alert", 2)) }()
			eventually(t, "the second replica waits for the first's answer", func() bool { return e.waiting("same_alert") })
			close(release)
			shared := 0
			for range 2 {
				out := <-outs
				if out.Action != consumer.Ack || !out.Stored {
					t.Fatalf("outcome %v, stored %v: %v", out.Action, out.Stored, out.Err)
				}
				if tc.err == nil && (out.Result.Status != message.StatusSuccess || len(out.Result.Domains) != 2 || out.Result.Domains[1] != "b.example") {
					t.Errorf("result %+v, want the domains", out.Result)
				}
				if tc.err != nil && (out.Result.Status != message.StatusFailure || out.Result.Kind() != message.KindNotFound ||
					out.Result.Error.HTTPStatus != 404 || out.Result.Error.Code != "ResourceNotFound") {
					t.Errorf("result %+v, want the not_found failure", out.Result.Error)
				}
				if out.Result.Coalesced {
					shared++
					if out.Result.Attempts != 0 {
						t.Errorf("the shared answer reports %d attempts, want 0", out.Result.Attempts)
					}
				}
			}
			if c := calls.Load(); c != 1 || shared != 1 {
				t.Errorf("%d calls, %d shared answers; want 1 and 1", c, shared)
			}
			if n := len(stored(t, e.results)); n != 2 {
				t.Errorf("%d results stored, want 2", n)
			}
		})
	}
}

// A replica that died holding a claim leaves it behind: the waiter calls
// once the claim's hold is over, not before, and not much later.
func TestSharedFlightsHolderDiedWaiterCallsAfterHold(t *testing.T) {
	const hold = 1500 * time.Millisecond
	e := newFlightsEnv(t, hold)
	_, js := e.connect(t)
	ack, err := js.Publish(t.Context(), claimSubjects+"."+FlightToken("lost_alert"), nil)
	if err != nil {
		t.Fatal(err)
	}
	claimed := time.Now()
	var calls atomic.Int32
	var calledAt atomic.Int64
	svc := e.replica(t, lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		calledAt.Store(time.Now().UnixNano())
		return connector.Result{Domains: []string{"late.example"}, Attempts: 1}, nil
	}))
	out := svc.Handle(t.Context(), delivery("lost_alert", 1))
	if out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess || out.Result.Coalesced || out.Result.Attempts != 1 {
		t.Fatalf("outcome %v: %+v (%v), want a success of its own call", out.Action, out.Result, out.Err)
	}
	waited := time.Unix(0, calledAt.Load()).Sub(claimed)
	if calls.Load() != 1 || waited < hold-100*time.Millisecond || waited > hold+time.Second {
		t.Errorf("%d calls, the first %v after the dead holder's claim; want 1, after the hold of %v (within a second)", calls.Load(), waited, hold)
	}
	s, err := js.Stream(t.Context(), claimsStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetMsg(t.Context(), ack.Sequence); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the dead holder's claim is still there: %v %v", m, err)
	}
	eventually(t, "the waiter's own claim released", func() bool {
		info, err := s.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	})
}

// A holder whose delivery is interrupted (shutdown) releases its claim
// without an answer: the waiter calls at once, not after the hold.
func TestSharedFlightsInterruptedHolderHandsOver(t *testing.T) {
	e := newFlightsEnv(t, time.Minute)
	var calls atomic.Int32
	entered := make(chan struct{}, 4)
	never := make(chan struct{})
	ctx, interrupt := context.WithCancel(t.Context())
	holder := e.replica(t, blockingLookup(&calls, entered, never, connector.Result{}, nil))
	waiter := e.replica(t, lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		return connector.Result{Domains: []string{"mine.example"}, Attempts: 1}, nil
	}))
	held := make(chan consumer.Outcome, 1)
	go func() { held <- holder.Handle(ctx, delivery("handed_over", 1)) }()
	<-entered
	eventually(t, "the holder no longer listens", func() bool { return !e.waiting("handed_over") })
	outs := make(chan consumer.Outcome, 1)
	go func() { outs <- waiter.Handle(t.Context(), delivery("handed_over", 2)) }()
	eventually(t, "the waiter waits", func() bool { return e.waiting("handed_over") })
	interrupt()
	if out := <-held; out.Action != consumer.HandBack {
		t.Errorf("the interrupted holder: %v, want a hand-back", out.Action)
	}
	select {
	case out := <-outs:
		if out.Result.Status != message.StatusSuccess || out.Result.Attempts != 1 {
			t.Errorf("the waiter: %+v (%v), want a success of its own call", out.Result, out.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter still waits after the holder let go of its claim")
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("%d calls, want the holder's and the waiter's", c)
	}
}

// Without the claims stream the service calls as without sharing.
func TestSharedFlightsFailOpen(t *testing.T) {
	e := newFlightsEnv(t, time.Minute)
	_, js := e.connect(t)
	if err := js.DeleteStream(t.Context(), claimsStream); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	svc := e.replica(t, lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		return connector.Result{Domains: []string{"x.example"}, Attempts: 1}, nil
	}))
	for seq := uint64(1); seq <= 2; seq++ {
		out := svc.Handle(t.Context(), delivery("no_claims", seq))
		if out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess || out.Result.Attempts != 1 {
			t.Fatalf("outcome %v: %+v (%v)", out.Action, out.Result, out.Err)
		}
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("%d calls, want 2", c)
	}
}

// A replica that does not share (alone, see Share) writes no claim and
// does not wait for another's: it calls at once.
func TestSharedFlightsNotSharingCallsAlone(t *testing.T) {
	e := newFlightsEnv(t, time.Minute)
	_, js := e.connect(t)
	if _, err := js.Publish(t.Context(), claimSubjects+"."+FlightToken("busy_alert"), nil); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	nc, js2 := e.connect(t)
	f, err := NewSharedFlights(js2, nc, claimsStream, claimSubjects, answerSubjects, e.hold)
	if err != nil {
		t.Fatal(err)
	}
	f.Share(false)
	svc, err := New(lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		calls.Add(1)
		return connector.Result{Domains: []string{"x.example"}, Attempts: 1}, nil
	}), js2, successSubj, failureSubj, WithSharedFlights(f))
	if err != nil {
		t.Fatal(err)
	}
	for i, alert := range []string{"busy_alert", "free_alert"} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		out := svc.Handle(ctx, delivery(alert, uint64(i+1)))
		cancel()
		if out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess || out.Result.Attempts != 1 {
			t.Fatalf("%s: %v %+v (%v), want a success of its own call", alert, out.Action, out.Result, out.Err)
		}
	}
	s, err := js.Stream(t.Context(), claimsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.LastSeq != 1 || calls.Load() != 2 {
		t.Errorf("%d calls, claims stream %+v (%v); want 2 calls and no claim but the other's", calls.Load(), info.State, err)
	}
}
