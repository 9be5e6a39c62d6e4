package handlers

import (
	"context"
	"fmt"
	"sync"
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

// runEarlier runs e until the test ends.
func runEarlier(t *testing.T, e *EarlierResults) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// apiCounter counts the JetStream API requests on subjects matching
// pattern that the server receives.
type apiCounter struct {
	nc *nats.Conn
	ch chan *nats.Msg
	n  int
}

func countAPI(t *testing.T, nc *nats.Conn, patterns ...string) *apiCounter {
	t.Helper()
	c := &apiCounter{nc: nc, ch: make(chan *nats.Msg, 1024)}
	for _, p := range patterns {
		sub, err := nc.ChanSubscribe(p, c.ch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// count is the number of requests seen so far: those the server received
// before the flush's round trip are in the channel when it returns.
func (c *apiCounter) count(t *testing.T) int {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case <-c.ch:
			c.n++
		default:
			return c.n
		}
	}
}

// consumerCreates counts the consumers created on stream RESULTS.
func consumerCreates(t *testing.T, js jetstream.JetStream) *apiCounter {
	return countAPI(t, js.Conn(), "$JS.API.CONSUMER.CREATE.RESULTS", "$JS.API.CONSUMER.CREATE.RESULTS.>")
}

// storeResults stores n results with message IDs prefix-0 … and returns
// their stream sequences by ID.
func storeResults(t *testing.T, js jetstream.JetStream, prefix string, n int) map[string]uint64 {
	t.Helper()
	seqs := make(map[string]uint64, n)
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: successSubj, Data: []byte(`{"status":"success"}`), Header: nats.Header{nats.MsgIdHdr: {id}}})
		if err != nil {
			t.Fatal(err)
		}
		seqs[id] = ack.Sequence
	}
	return seqs
}

func findOK(t *testing.T, e *EarlierResults, id string, since time.Time) (uint64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	seq, ok, err := e.Find(ctx, id, since)
	if err != nil {
		t.Fatalf("Find %s: %v", id, err)
	}
	return seq, ok
}

// TestEarlierResultsShareOneScan: questions asked together, and later ones
// for times the scan covers, are answered by one consumer that follows the
// stream: a result stored after the scan began is found, an ID never
// stored is not.
func TestEarlierResultsShareOneScan(t *testing.T) {
	js, _ := jetStream(t)
	since := time.Now()
	seqs := storeResults(t, js, "r", 40)
	creates := consumerCreates(t, js)
	e := NewEarlierResults(js, "RESULTS", []string{successSubj, failureSubj}, WithEarlierIdle(time.Minute))
	runEarlier(t, e)

	var wg sync.WaitGroup
	var wrong atomic.Int32
	for i := range 60 {
		id := fmt.Sprintf("r-%d", i) // 40 stored, 20 not
		wg.Go(func() {
			seq, ok, err := e.Find(t.Context(), id, since)
			if want, stored := seqs[id]; err != nil || ok != stored || seq != want {
				t.Errorf("Find %s: %d %v %v, want %d %v", id, seq, ok, err, want, stored)
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if n := creates.count(t); n != 1 {
		t.Errorf("%d scans for 60 questions asked together, want 1", n)
	}

	late := storeResults(t, js, "late", 1)
	if seq, ok := findOK(t, e, "late-0", since.Add(time.Second)); !ok || seq != late["late-0"] {
		t.Errorf("a result stored after the scan began: %d %v, want %d", seq, ok, late["late-0"])
	}
	if _, ok := findOK(t, e, "never", since); ok {
		t.Error("an ID never stored was found")
	}
	if n := creates.count(t); n != 1 {
		t.Errorf("%d scans, want the running one to answer later questions", n)
	}

	// A question for a time before the scan's start needs a scan of its own.
	if seq, ok := findOK(t, e, "r-3", since.Add(-time.Hour)); !ok || seq != seqs["r-3"] {
		t.Errorf("Find r-3 from an earlier time: %d %v", seq, ok)
	}
	if n := creates.count(t); n != 2 {
		t.Errorf("%d scans, want a second one from the earlier time", n)
	}
}

// TestEarlierResultsAtTheBound: a scan keeps at most the bound of IDs; past
// it, the questions it has are still answered, and a later question starts
// a new scan instead of trusting an incomplete set.
func TestEarlierResultsAtTheBound(t *testing.T) {
	js, _ := jetStream(t)
	since := time.Now()
	seqs := storeResults(t, js, "r", 10)
	creates := consumerCreates(t, js)
	e := NewEarlierResults(js, "RESULTS", []string{successSubj, failureSubj}, WithEarlierIdle(time.Minute), WithEarlierMaxIDs(3))
	runEarlier(t, e)

	for i, id := range []string{"r-8", "r-1", "r-9"} {
		if seq, ok := findOK(t, e, id, since); !ok || seq != seqs[id] {
			t.Errorf("Find %s: %d %v, want %d", id, seq, ok, seqs[id])
		}
		if n := creates.count(t); n != i+1 {
			t.Errorf("after %s: %d scans, want %d (each question past the bound scans again)", id, n, i+1)
		}
	}
	if _, ok := findOK(t, e, "r-10", since); ok {
		t.Error("an ID never stored was found")
	}
}

// TestEarlierResultsStreamUnreachable: a scan that cannot read the stream
// answers with an error, and the service then processes the redelivered
// request as before: one result, the warning in the outcome.
func TestEarlierResultsStreamUnreachable(t *testing.T) {
	js, st := jetStream(t)
	e := NewEarlierResults(js, "GONE", []string{successSubj})
	runEarlier(t, e)
	if _, _, err := e.Find(t.Context(), "r-0", time.Now()); err == nil {
		t.Error("Find on a stream that does not exist: no error")
	}
	// A connection that is closed for good.
	nc, err := nats.Connect(js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	closed, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	cut := NewEarlierResults(closed, "RESULTS", []string{successSubj})
	runEarlier(t, cut)
	if _, _, err := cut.Find(t.Context(), "r-0", time.Now()); err == nil {
		t.Error("Find over a closed connection: no error")
	}

	// The window was read, then the stream went away.
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LOST", Subjects: []string{"lost.>"}}); err != nil {
		t.Fatal(err)
	}
	broken := NewEarlierResults(js, "LOST", []string{"lost.>"})
	runEarlier(t, broken)
	if _, err := broken.Window(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "LOST"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	lookup := lookupFunc(func(context.Context, string) (connector.Result, error) {
		calls.Add(1)
		return connector.Result{Domains: []string{"www.example.com"}, Attempts: 1}, nil
	})
	svc, err := New(lookup, js, successSubj, failureSubj, WithEarlierResults(broken))
	if err != nil {
		t.Fatal(err)
	}
	d := &consumer.Delivery{Data: []byte("abc"), Stream: "REQ", StreamSeq: 3, Stored: time.Now().Add(-time.Hour), NumDelivered: 2}
	out := svc.Handle(t.Context(), d)
	if out.Action != consumer.Ack || !out.Stored || out.Duplicate || out.RecordErr == nil {
		t.Errorf("outcome %+v, want the request processed and the scan's error reported", out)
	}
	if calls.Load() != 1 || len(stored(t, st)) != 1 {
		t.Errorf("%d calls, %d results, want 1 and 1", calls.Load(), len(stored(t, st)))
	}
}

// TestHandleFindsEarlierResult: a redelivery old enough for the duplicate
// window to have forgotten its result, without a record, is acknowledged
// with the result stored by its first delivery: no Defender call, no
// second result. A first delivery and a young redelivery read nothing of
// the stream.
func TestHandleFindsEarlierResult(t *testing.T) {
	js, st := jetStream(t)
	var calls atomic.Int32
	lookup := lookupFunc(func(context.Context, string) (connector.Result, error) {
		calls.Add(1)
		return connector.Result{Domains: []string{"www.example.com"}, Attempts: 1}, nil
	})
	e := NewEarlierResults(js, "RESULTS", []string{successSubj, failureSubj}, WithEarlierIdle(time.Minute))
	runEarlier(t, e)
	svc, err := New(lookup, js, successSubj, failureSubj, WithEarlierResults(e))
	if err != nil {
		t.Fatal(err)
	}
	api := countAPI(t, js.Conn(), "$JS.API.>")

	// First deliveries: no API request beyond the publish.
	young := &consumer.Delivery{Data: []byte("young"), Stream: "REQ", StreamSeq: 1, Stored: time.Now(), NumDelivered: 1}
	if out := svc.Handle(t.Context(), young); !out.Stored || out.Duplicate {
		t.Fatalf("first delivery: %+v", out)
	}
	if n := api.count(t); n != 0 {
		t.Errorf("a first delivery made %d JetStream API requests, want 0", n)
	}
	// A young redelivery reads the window (once a minute), not the stream.
	again := *young
	again.NumDelivered = 2
	if out := svc.Handle(t.Context(), &again); !out.Stored || !out.Duplicate {
		t.Fatalf("young redelivery: %+v", out)
	}
	creates := consumerCreates(t, js)
	if n := creates.count(t); n != 0 {
		t.Errorf("a young redelivery scanned the stream (%d scans)", n)
	}

	// The old request's first delivery stored its result and stopped.
	old := &consumer.Delivery{Data: []byte("old"), Stream: "REQ", StreamSeq: 2, Stored: time.Now().Add(-time.Hour), NumDelivered: 2}
	first := message.Success("old", []string{"first.example.com"}, 1, false, testNow)
	first.Delivery = 1
	msg, err := first.Message(successSubj, message.ResultMsgID(old.Stream, old.StreamSeq, old.Stored), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	before := calls.Load()
	out := svc.Handle(t.Context(), old)
	if out.Action != consumer.Ack || !out.Stored || !out.Duplicate || out.Result == nil || out.Result.Delivery != 1 || len(out.Result.Domains) != 1 || out.Result.Domains[0] != "first.example.com" {
		t.Errorf("old redelivery: %+v (result %+v), want an ack with the stored result", out, out.Result)
	}
	if calls.Load() != before {
		t.Error("an old redelivery whose result is stored asked Defender")
	}
	if n := len(stored(t, st)); n != 2 {
		t.Errorf("%d results stored, want 2", n)
	}
}

// TestHandleSearchesAgainBeforePublishing: a redelivery too young to search
// when it began, whose lookup outlasts the duplicate window, searches
// before it publishes and stores no second result.
func TestHandleSearchesAgainBeforePublishing(t *testing.T) {
	js, st := jetStream(t)
	const window = time.Second
	cfg := st.CachedInfo().Config
	cfg.Duplicates = window
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	e := NewEarlierResults(js, "RESULTS", []string{successSubj, failureSubj}, WithEarlierIdle(time.Minute))
	runEarlier(t, e)
	d := &consumer.Delivery{Data: []byte("slow"), Stream: "REQ", StreamSeq: 4, Stored: time.Now(), NumDelivered: 2}
	first := message.Success("slow", []string{"first.example.com"}, 1, false, testNow)
	first.Delivery = 1
	msg, err := first.Message(successSubj, message.ResultMsgID(d.Stream, d.StreamSeq, d.Stored), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	lookup := lookupFunc(func(context.Context, string) (connector.Result, error) {
		calls.Add(1)
		testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return time.Since(d.Stored) > 2*window },
			"the lookup to outlast the duplicate window")
		return connector.Result{Domains: []string{"second.example.com"}, Attempts: 1}, nil
	})
	svc, err := New(lookup, js, successSubj, failureSubj, WithEarlierResults(e))
	if err != nil {
		t.Fatal(err)
	}
	out := svc.Handle(t.Context(), d)
	if out.Action != consumer.Ack || !out.Duplicate || out.Result == nil || out.Result.Delivery != 1 {
		t.Errorf("outcome %+v (result %+v), want an ack with the result of delivery 1", out, out.Result)
	}
	if n := len(stored(t, st)); n != 1 || calls.Load() != 1 {
		t.Errorf("%d results, %d calls, want 1 and 1", n, calls.Load())
	}
}
