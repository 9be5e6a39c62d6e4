package safetynet_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/safetynet"
)

// hookCall is one run of the hook: its result, and what the result stream
// and the advisory consumer held while it ran.
type hookCall struct {
	res        *message.Result
	stored     uint64 // results in the result stream
	ackPending int    // advisories delivered and not acknowledged
}

// hookLog records the hook's runs.
type hookLog struct {
	e     *env
	mu    sync.Mutex
	calls []hookCall
	errs  []error
}

func (h *hookLog) run(ctx context.Context, res *message.Result) {
	c := hookCall{res: res}
	var err error
	if st, serr := h.e.js.Stream(ctx, h.e.cfg.ResultStream); serr != nil {
		err = serr
	} else if info, ierr := st.Info(ctx); ierr != nil {
		err = ierr
	} else {
		c.stored = info.State.Msgs
	}
	if cons, cerr := h.e.js.Consumer(ctx, h.e.cfg.RequestStream, h.e.topo.Advisories.Durable); cerr != nil {
		err = cerr
	} else if info, ierr := cons.Info(ctx); ierr != nil {
		err = ierr
	} else {
		c.ackPending = info.NumAckPending
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
	if err != nil {
		h.errs = append(h.errs, err)
	}
}

func (h *hookLog) runs(t *testing.T) []hookCall {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.errs {
		t.Errorf("hook could not look at the streams: %v", err)
	}
	return append([]hookCall(nil), h.calls...)
}

// hookedNet is a safety net on e that reads the request records and runs
// hooks: the net, the records and the hooks' log.
func (e *env) hookedNet(t *testing.T) (*safetynet.Listener, *handlers.KVAnswers, *hookLog) {
	t.Helper()
	answers := e.answers(t)
	hooks := &hookLog{e: e}
	l, err := safetynet.New(e.js, e.topo, e.cfg.FailureSubject, safetynet.WithAnswers(answers), safetynet.WithHooks(hooks.run))
	if err != nil {
		t.Fatal(err)
	}
	return l, answers, hooks
}

func (e *env) answers(t *testing.T) *handlers.KVAnswers {
	t.Helper()
	kv, err := e.js.KeyValue(t.Context(), e.topo.Answers.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	return handlers.NewKVAnswers(kv, e.js, e.cfg.ResultStream)
}

// advisory is the max-deliveries advisory of the request at seq, as one
// delivery of the advisory consumer.
func (e *env) advisory(t *testing.T, seq uint64) *consumer.Delivery {
	t.Helper()
	adv, err := json.Marshal(safetynet.Advisory{Type: safetynet.AdvisoryType, Stream: e.cfg.RequestStream, Consumer: e.cfg.ConsumerName, StreamSeq: seq, Deliveries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return &consumer.Delivery{Data: adv, Stream: e.cfg.RequestStream, StreamSeq: 1000 + seq, NumDelivered: 1}
}

// storeResult stores res as the delivery of the request at seq would have,
// and its record when record is set.
func (e *env) storeResult(t *testing.T, answers handlers.Answers, seq uint64, res *message.Result, record bool) {
	t.Helper()
	stored := e.storedAt(t, seq)
	msg, err := res.Message(res.Subject(e.cfg.SuccessSubject, e.cfg.FailureSubject), message.ResultMsgID(e.cfg.RequestStream, seq, stored), "")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if record {
		if err := answers.Record(t.Context(), message.AnswerKey(seq, stored), ack.Sequence); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHooksRunForResultsTheSafetyNetStores: the unavailable failure and the
// cached success the safety net stores for requests out of deliveries run
// their hooks, once the result is stored and before the advisory is
// acknowledged.
func TestHooksRunForResultsTheSafetyNetStores(t *testing.T) {
	const alert = "da637472900382838869_1364969609"
	for _, tt := range []struct {
		name   string
		cached bool
		status string
		kind   message.Kind
	}{
		{name: "failure", status: message.StatusFailure, kind: message.KindUnavailable},
		{name: "cached success", cached: true, status: message.StatusSuccess},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			cache := handlers.NewResultCache(e.js, e.cfg.ResultStream, e.cfg.SuccessSubject, time.Hour)
			if tt.cached {
				if err := cache.Put(t.Context(), alert, []string{"www.example.com"}); err != nil {
					t.Fatal(err)
				}
			}
			seq := e.publishRequest(t, `{"alertId":"`+alert+`","correlationId":"siem-42"}`, nil)
			e.exhaust(t, seq)
			hooks := &hookLog{e: e}
			e.run(t, safetynet.WithAnswers(e.answers(t)), safetynet.WithCache(cache, e.cfg.SuccessSubject), safetynet.WithHooks(hooks.run))
			e.waitSettled(t)

			msgs := e.results(t)
			if len(msgs) != 1 {
				t.Fatalf("got %d results, want 1", len(msgs))
			}
			var stored message.Result
			if err := json.Unmarshal(msgs[0].Data, &stored); err != nil {
				t.Fatal(err)
			}
			runs := hooks.runs(t)
			if len(runs) != 1 {
				t.Fatalf("hook ran %d times, want once", len(runs))
			}
			got := runs[0]
			if got.res.Status != tt.status || got.res.Kind() != tt.kind || got.res.AlertID != alert ||
				got.res.CorrelationID != "siem-42" || got.res.RequestSequence != seq || got.res.CompletedAt != stored.CompletedAt {
				t.Errorf("hook given %+v, want the stored result %s", got.res, msgs[0].Data)
			}
			if got.stored != 1 || got.ackPending != 1 {
				t.Errorf("while the hook ran: %d results stored, %d advisories unacknowledged; want 1 and 1", got.stored, got.ackPending)
			}
		})
	}
}

// TestHookRunsForResultAnEarlierDeliveryStored: the request's last delivery
// stored its result and was cut, in its hook or before it. The advisory runs
// the hook with that stored result, found through the record or through the
// result stream's duplicate, and stores nothing; a result the result stream
// no longer holds runs no hook.
func TestHookRunsForResultAnEarlierDeliveryStored(t *testing.T) {
	for _, tt := range []struct {
		name   string
		record bool // the delivery wrote the request's record
		gone   bool // the result stream removed the result since
		hook   bool
	}{
		{name: "recorded", record: true, hook: true},
		{name: "not recorded", hook: true},
		{name: "recorded and removed", record: true, gone: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			l, answers, hooks := e.hookedNet(t)
			seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
			res := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now().Add(-time.Minute))
			res.RequestSequence, res.Delivery = seq, 2
			e.storeResult(t, answers, seq, res, tt.record)
			if tt.gone {
				st, err := e.js.Stream(t.Context(), e.cfg.ResultStream)
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Purge(t.Context()); err != nil {
					t.Fatal(err)
				}
			}

			out := l.Handle(t.Context(), e.advisory(t, seq))
			if out.Action != consumer.Ack || !out.Stored || !out.Duplicate {
				t.Fatalf("outcome %v stored %v duplicate %v (%v), want the advisory acknowledged as answered", out.Action, out.Stored, out.Duplicate, out.Err)
			}
			want := 1
			if tt.gone {
				want = 0
			}
			if n := len(e.results(t)); n != want {
				t.Errorf("%d results, want %d", n, want)
			}
			runs := hooks.runs(t)
			if !tt.hook {
				if len(runs) != 0 {
					t.Errorf("hook ran with %+v for a result no longer stored", runs[0].res)
				}
				return
			}
			if len(runs) != 1 {
				t.Fatalf("hook ran %d times, want once", len(runs))
			}
			if got := runs[0].res; got.Status != message.StatusSuccess || got.Delivery != 2 || got.CompletedAt != res.CompletedAt {
				t.Errorf("hook given %+v, want the stored success", got)
			}
		})
	}
}

// TestHookRunsAgainWhenAdvisoryRedelivered: the safety net stored its
// failure and was cut during the hook, before acknowledging the advisory;
// the advisory, delivered again, runs the hook again with the stored
// failure, and stores nothing more.
func TestHookRunsAgainWhenAdvisoryRedelivered(t *testing.T) {
	e := setup(t)
	hooks := &hookLog{e: e}
	l, err := safetynet.New(e.js, e.topo, e.cfg.FailureSubject, safetynet.WithAnswers(e.answers(t)), safetynet.WithHooks(hooks.run))
	if err != nil {
		t.Fatal(err)
	}
	seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
	for i := range 2 {
		if out := l.Handle(t.Context(), e.advisory(t, seq)); out.Action != consumer.Ack || !out.Stored {
			t.Fatalf("delivery %d of the advisory: outcome %v stored %v (%v)", i+1, out.Action, out.Stored, out.Err)
		}
	}
	if n := len(e.results(t)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
	runs := hooks.runs(t)
	if len(runs) != 2 {
		t.Fatalf("hook ran %d times, want twice", len(runs))
	}
	first, again := runs[0].res, runs[1].res
	if first.Kind() != message.KindUnavailable || again.Kind() != message.KindUnavailable || again.CompletedAt != first.CompletedAt {
		t.Errorf("hook ran with %+v then %+v, want the stored failure twice", first, again)
	}
}

// TestHookWaitsForStoredResult: a request whose record names its result,
// while the result stream cannot be read: the advisory is answered again
// later, when the hook can be given the stored result, not acknowledged
// without the hook nor run with a result that was not stored.
func TestHookWaitsForStoredResult(t *testing.T) {
	e := setup(t)
	l, answers, hooks := e.hookedNet(t)
	seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
	res := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now())
	res.RequestSequence = seq
	e.storeResult(t, answers, seq, res, true)
	if err := e.js.DeleteStream(t.Context(), e.cfg.ResultStream); err != nil {
		t.Fatal(err)
	}
	out := l.Handle(t.Context(), e.advisory(t, seq))
	if out.Action != consumer.Retry || out.Delay <= 0 || out.Stored || out.Err == nil {
		t.Errorf("outcome %v delay %v stored %v (%v), want the advisory answered again later", out.Action, out.Delay, out.Stored, out.Err)
	}
	if runs := len(hooks.runs(t)); runs != 0 {
		t.Errorf("hook ran %d times without the stored result", runs)
	}
}
