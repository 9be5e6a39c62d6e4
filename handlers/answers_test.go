package handlers

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

// handled handles d on r and fails unless a new result was stored.
func handled(t *testing.T, r *replica, d *consumer.Delivery) consumer.Outcome {
	t.Helper()
	out := r.svc.Handle(t.Context(), d)
	if !out.Stored || out.Duplicate || out.Action == consumer.Retry {
		t.Fatalf("request %d: %v stored=%v duplicate=%v (%v), want a new result", d.StreamSeq, out.Action, out.Stored, out.Duplicate, out.Err)
	}
	return out
}

// answered handles d on r and fails unless its stored result, domains,
// was the outcome, without a call or a publish.
func answered(t *testing.T, e *env, r *replica, js *failingJS, d *consumer.Delivery, domains []string) {
	t.Helper()
	before := js.published.Load()
	out := r.svc.Handle(t.Context(), d)
	if out.Action != consumer.Ack || !out.Stored || !out.Duplicate || out.Result == nil || !slices.Equal(out.Result.Domains, domains) {
		t.Fatalf("request %d: %v stored=%v duplicate=%v result %+v (%v), want the stored result %v", d.StreamSeq, out.Action, out.Stored, out.Duplicate, out.Result, out.Err, domains)
	}
	if got := e.calls.taken(); len(got) != 0 {
		t.Errorf("calls %v for a request with its result", got)
	}
	if n := js.published.Load() - before; n != 0 {
		t.Errorf("%d publishes for a request with its result", n)
	}
}

// counting is a JetStream for a Service that counts its publishes.
func counting(e *env) *failingJS { return &failingJS{JetStream: e.js} }

// ackAll acknowledges every request the request consumer has, as the
// service does once their results are stored.
func (e *env) ackAll(t *testing.T) {
	t.Helper()
	c, err := e.js.Consumer(t.Context(), reqStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedeliveryWithinWindowIsDroppedAsDuplicate: a redelivery that
// reaches another replica while the first delivery still works makes a
// call of its own, and its result is dropped by the result stream: the
// outcome is the result stored first.
func TestRedeliveryWithinWindowIsDroppedAsDuplicate(t *testing.T) {
	e := newEnv(t)
	a, b := e.replica(t), e.replica(t)
	// Each call gets its answer on a channel of its own.
	entered := make(chan chan []string, 2)
	e.calls.set(func(ctx context.Context, tenant, id string) (connector.Result, error) {
		domains := make(chan []string)
		entered <- domains
		return connector.Result{Domains: <-domains, Attempts: 1}, nil
	})
	d := e.request(t, reqSubj, "a1", nil)
	first, second := make(chan consumer.Outcome, 1), make(chan consumer.Outcome, 1)
	go func() { first <- a.svc.Handle(t.Context(), d) }()
	firstCall := <-entered
	redelivery := again(d)
	go func() { second <- b.svc.Handle(t.Context(), redelivery) }()
	secondCall := <-entered
	firstCall <- []string{"first.example"}
	if out := <-first; !out.Stored || out.Duplicate {
		t.Fatalf("first delivery: stored=%v duplicate=%v (%v)", out.Stored, out.Duplicate, out.Err)
	}
	secondCall <- []string{"second.example"}
	out := <-second
	if out.Action != consumer.Ack || !out.Stored || !out.Duplicate || !slices.Equal(out.Result.Domains, []string{"first.example"}) {
		t.Fatalf("redelivery: %v stored=%v duplicate=%v domains %v, want the first result", out.Action, out.Stored, out.Duplicate, out.Result.Domains)
	}
	if n := len(e.stored(t)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}
}

// TestOldRedeliveryFoundAfterCatchingUp: a redelivery older than half the
// duplicate window (a result published for it now might be stored again)
// is answered only once the replica has read the stream up to now: the
// result another replica stored is its outcome, with no call and nothing
// published.
func TestOldRedeliveryFoundAfterCatchingUp(t *testing.T) {
	e := newEnv(t)
	a := e.replica(t)
	js := counting(e)
	b := e.replica(t, withJS(js))
	b.clock.advance(old)
	d := e.request(t, reqSubj, "a1", nil)
	handled(t, a, d)
	e.calls.taken()
	answered(t, e, b, js, again(d), []string{"default.example"})
}

// TestLongCallAsksAgainBeforePublishing: a redelivery that another
// delivery answers while its own call goes on past half the duplicate
// window (the quota, Retry-After) publishes nothing: its result would no
// longer be dropped as a copy. The outcome is the result stored first.
func TestLongCallAsksAgainBeforePublishing(t *testing.T) {
	e := newEnv(t)
	a := e.replica(t)
	js := counting(e)
	b := e.replica(t, withJS(js))
	entered, release := make(chan struct{}), make(chan struct{})
	var blocked atomic.Bool
	e.calls.set(func(ctx context.Context, tenant, id string) (connector.Result, error) {
		if blocked.CompareAndSwap(false, true) { // b's call
			entered <- struct{}{}
			<-release
			b.clock.advance(old)
			return connector.Result{Domains: []string{"late.example"}, Attempts: 1}, nil
		}
		return connector.Result{Domains: []string{"first.example"}, Attempts: 1}, nil
	})
	d := e.request(t, reqSubj, "a1", nil)
	outs := make(chan consumer.Outcome, 1)
	redelivery := again(d)
	go func() { outs <- b.svc.Handle(t.Context(), redelivery) }()
	<-entered
	handled(t, a, d)
	close(release)
	out := <-outs
	if out.Action != consumer.Ack || !out.Stored || !out.Duplicate || !slices.Equal(out.Result.Domains, []string{"first.example"}) {
		t.Fatalf("redelivery: %v stored=%v duplicate=%v result %+v, want the result stored first", out.Action, out.Stored, out.Duplicate, out.Result)
	}
	if n := js.published.Load(); n != 0 {
		t.Errorf("%d publishes after the call, want none", n)
	}
}

// TestOldRequestWithoutResultIsAsked: an old request without a result is
// asked at once, also when every result stored before the reading began
// is gone (the stream's age limit removes them after a quiet week; a purge
// here), so that the reading begins past the end of the stream.
func TestOldRequestWithoutResultIsAsked(t *testing.T) {
	e := newEnv(t)
	before := e.replica(t)
	handled(t, before, e.request(t, reqSubj, "a1", nil))
	if err := e.results.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := e.replica(t)
	r.clock.advance(old)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d := e.request(t, reqSubj, "a2", nil)
	if out := r.svc.Handle(ctx, d); out.Action != consumer.Ack || !out.Stored {
		t.Fatalf("old request without a result: %v stored=%v (%v), want it asked and answered", out.Action, out.Stored, out.Err)
	}
}

// TestOldRequestAskedPastForeignMessage: a message of another subject
// (or one deleted) at the end of the result stream is never waited for:
// an old request without a result is asked at once.
func TestOldRequestAskedPastForeignMessage(t *testing.T) {
	e := newEnv(t)
	before := e.replica(t)
	handled(t, before, e.request(t, reqSubj, "a1", nil))
	cfg := e.results.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "probe")
	if _, err := e.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(t.Context(), "probe", nil); err != nil {
		t.Fatal(err)
	}
	r := e.replica(t)
	r.clock.advance(old)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d := e.request(t, reqSubj, "a2", nil)
	if out := r.svc.Handle(ctx, d); out.Action != consumer.Ack || !out.Stored {
		t.Fatalf("old request behind a foreign message: %v stored=%v (%v), want it asked and answered", out.Action, out.Stored, out.Err)
	}
}

// TestRequestBeforeHorizonFoundBySearch: a request stored before the
// oldest one the request consumer may still deliver when the replica
// started (a safety net's question, say) is looked for in the stream.
func TestRequestBeforeHorizonFoundBySearch(t *testing.T) {
	e := newEnv(t)
	a := e.replica(t)
	d := e.request(t, reqSubj, "a1", nil)
	handled(t, a, d)
	e.calls.taken()
	e.ackAll(t)
	// Started later, b reads the results from its start on: none.
	js := counting(e)
	b := e.replica(t, withJS(js), withClockAhead(10*time.Minute))
	answered(t, e, b, js, again(d), []string{"default.example"})
}

// TestRequestForgottenByDoneFoundBySearch: a request at or below the
// request consumer's acknowledgement floor is forgotten; asked about
// again, it is looked for in the stream.
func TestRequestForgottenByDoneFoundBySearch(t *testing.T) {
	e := newEnv(t)
	js := counting(e)
	r := e.replica(t, withJS(js))
	d := e.request(t, reqSubj, "a1", nil)
	handled(t, r, d)
	e.calls.taken()
	r.answers.Done(d.StreamSeq)
	r.clock.advance(old)
	answered(t, e, r, js, again(d), []string{"default.example"})
}

// TestRecreatedRequestStreamIsNeverMistaken: a request stream deleted and
// created again stores new requests at the sequences of old ones; the
// results of the old requests answer none of them.
func TestRecreatedRequestStreamIsNeverMistaken(t *testing.T) {
	e := newEnv(t)
	js := counting(e)
	r := e.replica(t, withJS(js))
	before := e.request(t, reqSubj, "a1", nil)
	handled(t, r, before)
	s, err := e.js.Stream(t.Context(), reqStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if err := e.js.DeleteStream(t.Context(), reqStream); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	after := e.request(t, reqSubj, "a1", nil)
	if after.StreamSeq != before.StreamSeq || after.Stored.Equal(before.Stored) {
		t.Fatalf("request at %d stored %v, want the old sequence %d at another time", after.StreamSeq, after.Stored, before.StreamSeq)
	}
	if seq, err := r.answers.FirstUnanswered(t.Context(), 1, after.StreamSeq); err != nil || seq != after.StreamSeq {
		t.Errorf("FirstUnanswered = %d, %v; want %d", seq, err, after.StreamSeq)
	}
	r.clock.advance(old)
	handled(t, r, after)
	if got := e.calls.taken(); len(got) != 2 {
		t.Errorf("calls %v, want one per stored request", got)
	}
	answered(t, e, r, js, again(after), []string{"default.example"})
	if seq, err := r.answers.FirstUnanswered(t.Context(), 1, after.StreamSeq); err != nil || seq != after.StreamSeq+1 {
		t.Errorf("FirstUnanswered = %d, %v; want %d", seq, err, after.StreamSeq+1)
	}
	msgs := e.stored(t)
	if len(msgs) != 2 || msgs[0].Header.Get(nats.MsgIdHdr) != idOf(before) || msgs[1].Header.Get(nats.MsgIdHdr) != idOf(after) {
		t.Errorf("%d results stored, want one for each request", len(msgs))
	}
}

// TestCacheAfterRequestStreamRecreated: a success whose request the
// re-created stream no longer holds cannot be checked: it answers no new
// request for its alert, and is not counted as a forgery.
func TestCacheAfterRequestStreamRecreated(t *testing.T) {
	e := newEnv(t)
	handled(t, e.replica(t, withCacheTTL(time.Hour)), e.request(t, reqSubj, "a1", nil))
	s, err := e.js.Stream(t.Context(), reqStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if err := e.js.DeleteStream(t.Context(), reqStream); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	e.calls.taken()
	r := e.replica(t, withCacheTTL(time.Hour))
	if out := handled(t, r, e.request(t, reqSubj, "a1", nil)); out.Result.Cached == nil || *out.Result.Cached {
		t.Errorf("answered %+v from a success whose request is gone, want a call", out.Result)
	}
	if got := e.calls.taken(); len(got) != 1 {
		t.Errorf("calls %v, want one", got)
	}
	if got := r.ignored.taken(); len(got) != 0 {
		t.Errorf("the service's own result was counted as not the service's: %v", got)
	}
}

// TestFirstUnanswered: where a re-created request consumer starts: at the
// first request without a result, past the advisories the request stream
// also stores.
func TestFirstUnanswered(t *testing.T) {
	e := newEnv(t)
	r := e.replica(t)
	var ds []*consumer.Delivery
	for _, alert := range []string{"a1", "a2", "a3"} {
		ds = append(ds, e.request(t, reqSubj, alert, nil))
	}
	if _, err := e.js.Publish(t.Context(), advisories, []byte(`{"stream_seq":3}`)); err != nil {
		t.Fatal(err)
	}
	for _, alert := range []string{"a5", "a6"} {
		ds = append(ds, e.request(t, reqSubj+".alpha", alert, nil))
	}
	last := ds[len(ds)-1].StreamSeq
	for _, i := range []int{0, 1, 3} {
		handled(t, r, ds[i])
	}
	for _, tc := range []struct {
		from, want uint64
	}{{1, 3}, {3, 3}, {4, 6}, {6, 6}, {last + 1, last + 1}} {
		if got, err := r.answers.FirstUnanswered(t.Context(), tc.from, last); err != nil || got != tc.want {
			t.Errorf("FirstUnanswered(%d, %d) = %d, %v; want %d", tc.from, last, got, err, tc.want)
		}
	}
	handled(t, r, ds[2])
	handled(t, r, ds[4])
	if got, err := r.answers.FirstUnanswered(t.Context(), 1, last); err != nil || got != last+1 {
		t.Errorf("every request answered: FirstUnanswered = %d, %v; want %d", got, err, last+1)
	}
}

// TestForgedResultWithoutExactIDChangesNothing: a message on a result
// subject that names a request by its sequence but not by its store time
// to the nanosecond neither hides the request's result nor makes a
// re-created consumer skip a request. One that carries a request's exact
// message ID does make it skip that request: the ID is the service's only
// mark on its results, and whoever may publish on a result subject and
// knows when a request was stored can write it (NATS permissions keep
// customers off the result subjects).
func TestForgedResultWithoutExactIDChangesNothing(t *testing.T) {
	e := newEnv(t)
	js := counting(e)
	r := e.replica(t, withJS(js))
	answeredReq := e.request(t, reqSubj, "a1", nil)
	handled(t, r, answeredReq)
	e.calls.taken()
	open := e.request(t, reqSubj, "a2", nil)
	exact := e.request(t, reqSubj, "a3", nil)
	forge := func(d *consumer.Delivery, id string) {
		res := message.Success(string(d.Data), []string{"forged.example"}, 1, false, testNow)
		res.RequestSequence, res.Tenant = d.StreamSeq, config.DefaultTenant
		e.forge(t, successSubj, id, res, nil)
	}
	for _, d := range []*consumer.Delivery{answeredReq, open} {
		forge(d, message.ResultMsgID(reqStream, d.StreamSeq, d.Stored.Add(time.Nanosecond)))
	}
	forge(exact, idOf(exact))

	r.clock.advance(old)
	answered(t, e, r, js, again(answeredReq), []string{"default.example"})
	if got, err := r.answers.FirstUnanswered(t.Context(), open.StreamSeq, exact.StreamSeq); err != nil || got != open.StreamSeq {
		t.Errorf("FirstUnanswered = %d, %v; want %d, the request with only a forged result", got, err, open.StreamSeq)
	}
	if got, err := r.answers.FirstUnanswered(t.Context(), exact.StreamSeq, exact.StreamSeq); err != nil || got != exact.StreamSeq+1 {
		t.Errorf("FirstUnanswered past a result with the exact ID = %d, %v; want %d", got, err, exact.StreamSeq+1)
	}
}

// TestBelievedOnlyTheServicesResult: Believed takes a stored result for a
// request's only when the service could have written it for that request;
// anything else is counted, by reason.
func TestBelievedOnlyTheServicesResult(t *testing.T) {
	tests := []struct {
		name     string
		reqSubj  string
		body     string
		subject  string
		res      func(d *consumer.Delivery) *message.Result
		header   func(nats.Header)
		raw      []byte // a body that is not a result
		believed bool
		reason   string
	}{
		{name: "the service's own", reqSubj: reqSubj + ".alpha", body: "X", subject: successSubj + ".alpha",
			res: success("X", "alpha"), believed: true},
		{name: "another alert", reqSubj: reqSubj + ".alpha", body: "X", subject: successSubj + ".alpha",
			res: success("Y", "alpha"), reason: message.ReasonRequest},
		{name: "on alpha's subject with bravo in the body, for bravo's request", reqSubj: reqSubj + ".bravo", body: "X",
			subject: successSubj + ".alpha", res: success("X", "bravo"), header: tenantHeader("alpha"), reason: message.ReasonRequest},
		{name: "on alpha's subject with bravo in the body, for alpha's request", reqSubj: reqSubj + ".alpha", body: "X",
			subject: successSubj + ".alpha", res: success("X", "bravo"), header: tenantHeader("alpha"), reason: message.ReasonRequest},
		{name: "on the plain subject with bravo in the body", reqSubj: reqSubj, body: "X",
			subject: successSubj, res: success("X", "bravo"), reason: message.ReasonRequest},
		{name: "another tenant's failure", reqSubj: reqSubj + ".alpha", body: "X", subject: failureSubj + ".bravo",
			res: failure("X", "bravo"), reason: message.ReasonRequest},
		{name: "a tenant's request answered without one", reqSubj: reqSubj + ".alpha", body: "X", subject: failureSubj,
			res: failure("X", ""), reason: message.ReasonRequest},
		{name: "a tenant on a request that names none", reqSubj: reqSubj, body: "X", subject: successSubj + ".alpha",
			res: success("X", "alpha"), reason: message.ReasonRequest},
		{name: "another request's sequence", reqSubj: reqSubj, body: "X", subject: successSubj,
			res: func(d *consumer.Delivery) *message.Result {
				r := success("X", config.DefaultTenant)(d)
				r.RequestSequence++
				return r
			}, reason: message.ReasonRequest},
		{name: "not JSON", reqSubj: reqSubj, body: "X", subject: successSubj, res: success("X", config.DefaultTenant),
			raw: []byte("domains: x"), reason: message.ReasonBody},
		{name: "a Result-Status header its subject does not say", reqSubj: reqSubj + ".alpha", body: "X", subject: successSubj + ".alpha",
			res: success("X", "alpha"), header: func(h nats.Header) { h.Set(message.HeaderResultStatus, message.StatusFailure) }, reason: message.ReasonStatus},
		{name: "a Tenant header its subject does not say", reqSubj: reqSubj + ".alpha", body: "X", subject: successSubj + ".alpha",
			res: success("X", "alpha"), header: func(h nats.Header) { h.Set(message.HeaderTenant, "bravo") }, reason: message.ReasonTenant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.replica(t)
			d := e.request(t, tt.reqSubj, tt.body, nil)
			edit := tt.header
			if tt.raw != nil {
				edit = nil
			}
			msg, err := tt.res(d).Message(tt.subject, idOf(d), "")
			if err != nil {
				t.Fatal(err)
			}
			if edit != nil {
				edit(msg.Header)
			}
			if tt.raw != nil {
				msg.Data = tt.raw
			}
			ack, err := e.js.PublishMsg(t.Context(), msg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.answers.Believed(t.Context(), requestOf(d), ack.Sequence)
			if tt.believed {
				if err != nil || res == nil || res.AlertID != "X" {
					t.Fatalf("Believed = %+v, %v; want the result", res, err)
				}
				return
			}
			if !errors.Is(err, message.ErrNotOurs) || res != nil {
				t.Fatalf("Believed = %+v, %v; want ErrNotOurs", res, err)
			}
			if got := r.ignored.taken(); !slices.Contains(got, tt.reason) {
				t.Errorf("counted %v, want %s", got, tt.reason)
			}
		})
	}
}

func tenantHeader(tenant string) func(nats.Header) {
	return func(h nats.Header) { h.Set(message.HeaderTenant, tenant) }
}

func success(alert, tenant string) func(d *consumer.Delivery) *message.Result {
	return func(d *consumer.Delivery) *message.Result {
		r := message.Success(alert, []string{"forged.example"}, 1, false, testNow)
		r.RequestSequence, r.Tenant = d.StreamSeq, tenant
		return r
	}
}

func failure(alert, tenant string) func(d *consumer.Delivery) *message.Result {
	return func(d *consumer.Delivery) *message.Result {
		r := message.Failure(alert, &message.Error{Kind: message.KindNotFound}, 1, testNow)
		r.RequestSequence, r.Tenant = d.StreamSeq, tenant
		return r
	}
}

// TestIgnoredWhileReading: the reading counts, by reason, the messages on
// result subjects that are not results of the service, and takes none of
// them for one.
func TestIgnoredWhileReading(t *testing.T) {
	e := newEnv(t)
	d := e.request(t, reqSubj+".alpha", "X", nil)
	good := success("X", "alpha")(d)
	forged := []struct {
		id     string
		edit   func(nats.Header)
		reason string
	}{
		{id: "someone-else", reason: message.ReasonMessageID},
		{id: message.ResultMsgID("OTHER", d.StreamSeq, d.Stored), reason: message.ReasonMessageID},
		{id: idOf(d) + "0", reason: message.ReasonMessageID},
		{id: idOf(d) + "-x", edit: func(h nats.Header) { h.Set(message.HeaderResultStatus, "failure") }, reason: message.ReasonMessageID},
		{id: message.ResultMsgID(reqStream, d.StreamSeq+1, d.Stored), edit: func(h nats.Header) { h.Set(message.HeaderResultStatus, "failure") }, reason: message.ReasonStatus},
		{id: message.ResultMsgID(reqStream, d.StreamSeq+2, d.Stored), edit: func(h nats.Header) { h.Del(message.HeaderResultStatus) }, reason: message.ReasonStatus},
		{id: message.ResultMsgID(reqStream, d.StreamSeq+3, d.Stored), edit: func(h nats.Header) { h.Set(message.HeaderTenant, "bravo") }, reason: message.ReasonTenant},
	}
	for _, f := range forged {
		e.forge(t, successSubj+".alpha", f.id, good, f.edit)
	}
	r := e.replica(t)
	var want []string
	for _, f := range forged {
		want = append(want, f.reason)
	}
	if got := r.ignored.taken(); !slices.Equal(got, want) {
		t.Errorf("counted %v, want %v", got, want)
	}
	if seq, found, err := r.answers.Find(t.Context(), requestOf(d)); found || err != nil {
		t.Errorf("Find = %d, %v, %v: a forged result was taken for the request's", seq, found, err)
	}
}

// TestCacheAnswersRepeatedRequests: a success answers later requests for
// its alert, of the same tenant and API, without a call: on the replica
// that stored it and, once checked against the request it answered, on
// every other. A cached answer has attempts 0 and cached true.
func TestCacheAnswersRepeatedRequests(t *testing.T) {
	e := newEnv(t)
	live := e.replica(t, withCacheTTL(time.Hour))
	a := e.replica(t, withCacheTTL(time.Hour))
	handled(t, a, e.request(t, reqSubj+".alpha", "X", nil))
	if got := e.calls.taken(); !slices.Equal(got, []string{"alpha/X"}) {
		t.Fatalf("calls %v", got)
	}
	later := e.replica(t, withCacheTTL(time.Hour))
	key := CacheKey(config.DefaultTenant, "alpha", connector.Graph, "X")
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() bool {
		_, ok := live.answers.Cached(t.Context(), key)
		return ok
	}, "a replica running meanwhile to cache the success")
	for name, r := range map[string]*replica{"the replica that stored it": a, "a replica started later": later, "a replica running meanwhile": live} {
		d := e.request(t, reqSubj+".alpha", "X", nil)
		out := handled(t, r, d)
		if got := e.calls.taken(); len(got) != 0 {
			t.Errorf("%s made calls %v", name, got)
		}
		res := out.Result
		if res.Status != message.StatusSuccess || res.Attempts != 0 || res.Cached == nil || !*res.Cached ||
			!slices.Equal(res.Domains, []string{"alpha.example"}) || res.API != "graph" || res.Tenant != "alpha" {
			t.Errorf("%s answered %+v, want the cached success", name, res)
		}
	}
	if got := allIgnored(a, later, live); len(got) != 0 {
		t.Errorf("the service's own results were counted as ignored: %v", got)
	}

	// Another tenant, the tenant of the plain subjects, or alpha once it
	// asks another API, is asked.
	for _, subject := range []string{reqSubj + ".bravo", reqSubj} {
		handled(t, later, e.request(t, subject, "X", nil))
	}
	set, err := tenants.New([]config.Tenant{{Name: "alpha", API: connector.MDE}}, e.calls.build)
	if err != nil {
		t.Fatal(err)
	}
	e.tenants.Swap(set)
	handled(t, later, e.request(t, reqSubj+".alpha", "X", nil))
	if got := e.calls.taken(); !slices.Equal(got, []string{"bravo/X", "default/X", "alpha/X"}) {
		t.Errorf("calls %v, want one for each other tenant and API", got)
	}
	for _, m := range e.stored(t) {
		if res := decode(t, m); res.Cached != nil && *res.Cached && res.Attempts != 0 {
			t.Errorf("cached answer %s", m.Data)
		}
	}
}

// allIgnored is what the replicas counted as not the service's.
func allIgnored(rs ...*replica) []string {
	var all []string
	for _, r := range rs {
		all = append(all, r.ignored.taken()...)
	}
	return all
}

// TestCacheTTL: a success answers for CACHE_TTL after its call, on every
// replica; an answer given from the cache does not make it younger.
// CACHE_TTL=0 caches nothing.
func TestCacheTTL(t *testing.T) {
	e := newEnv(t)
	a := e.replica(t, withCacheTTL(time.Hour))
	handled(t, a, e.request(t, reqSubj, "X", nil))
	b := e.replica(t, withCacheTTL(time.Hour))
	off := e.replica(t)
	e.calls.taken()
	for _, r := range []*replica{a, b} {
		r.clock.advance(59 * time.Minute)
		if out := handled(t, r, e.request(t, reqSubj, "X", nil)); out.Result.Cached == nil || !*out.Result.Cached {
			t.Errorf("59 minutes after the call: %+v, want the cached success", out.Result)
		}
	}
	if got := e.calls.taken(); len(got) != 0 {
		t.Errorf("calls %v within CACHE_TTL", got)
	}
	for _, r := range []*replica{a, b} {
		r.clock.advance(2 * time.Minute)
		if out := handled(t, r, e.request(t, reqSubj, "X", nil)); out.Result.Cached == nil || *out.Result.Cached {
			t.Errorf("61 minutes after the call: %+v, want a call", out.Result)
		}
	}
	if got := e.calls.taken(); len(got) != 2 {
		t.Errorf("calls %v after CACHE_TTL, want one per replica", got)
	}
	handled(t, off, e.request(t, reqSubj, "X", nil))
	if got := e.calls.taken(); len(got) != 1 {
		t.Errorf("calls %v with CACHE_TTL=0, want one", got)
	}
}

// TestForgedSuccessNeverAnswersFromCache: a success on alpha's subject
// that is not the service's result of the request it names answers no
// later request, of alpha or of the tenant its body names, and is counted.
func TestForgedSuccessNeverAnswersFromCache(t *testing.T) {
	e := newEnv(t)
	// Requests without results yet, whose message IDs the forger uses.
	alphaY := e.request(t, reqSubj+".alpha", "Y", nil)
	bravoX := e.request(t, reqSubj+".bravo", "X", nil)
	alphaX := e.request(t, reqSubj+".alpha", "X", nil)
	onAlpha := func(h nats.Header) { h.Set(message.HeaderTenant, "alpha") }
	for _, f := range []struct {
		d      *consumer.Delivery
		tenant string
	}{{alphaY, "alpha"}, {bravoX, "bravo"}, {alphaX, "bravo"}} {
		res := success("X", f.tenant)(f.d)
		res.API = string(connector.Graph)
		e.forge(t, successSubj+".alpha", idOf(f.d), res, onAlpha)
	}
	r := e.replica(t, withCacheTTL(time.Hour))
	for _, subject := range []string{reqSubj + ".alpha", reqSubj + ".bravo"} {
		if out := handled(t, r, e.request(t, subject, "X", nil)); out.Result.Cached == nil || *out.Result.Cached || slices.Contains(out.Result.Domains, "forged.example") {
			t.Errorf("request on %s answered %+v, want a call", subject, out.Result)
		}
	}
	if got := e.calls.taken(); !slices.Equal(got, []string{"alpha/X", "bravo/X"}) {
		t.Errorf("calls %v, want alpha's and bravo's", got)
	}
	if got := r.ignored.taken(); !slices.Contains(got, message.ReasonRequest) {
		t.Errorf("counted %v, want %s", got, message.ReasonRequest)
	}
}

func TestCacheKey(t *testing.T) {
	for _, tc := range []struct {
		tenant string
		api    connector.API
		want   string
	}{
		{config.DefaultTenant, connector.MDE, "X"},
		{config.DefaultTenant, "", "X"},
		{config.DefaultTenant, connector.Graph, "graph:X"},
		{"alpha", connector.Graph, "graph:alpha.X"},
		{"alpha", connector.MDE, "alpha.X"},
		{"bravo", connector.MDE, "bravo.X"},
	} {
		if got := CacheKey(config.DefaultTenant, tc.tenant, tc.api, "X"); got != tc.want {
			t.Errorf("CacheKey(%s, %s) = %q, want %q", tc.tenant, tc.api, got, tc.want)
		}
	}
}
