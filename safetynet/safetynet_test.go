package safetynet_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/safetynet"
)

// env is a JetStream server with the service's topology (MAX_DELIVER=2).
type env struct {
	cfg  *config.Config
	topo broker.Topology
	js   jetstream.JetStream
}

func setup(t *testing.T) *env {
	t.Helper()
	_, url := testenv.EmbeddedJetStream(t)
	vars := map[string]string{"MAX_DELIVER": "2", "CACHE_TTL": "0", "ACK_WAIT": "5s"}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	_, js := testenv.Connect(t, url)
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, discard()); err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, topo: topo, js: js}
}

// publishRequest stores a request and returns its stream sequence.
func (e *env) publishRequest(t *testing.T, body string, header nats.Header) uint64 {
	t.Helper()
	ack, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: e.cfg.RequestSubject, Data: []byte(body), Header: header})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// storedAt is when the request stream stored the request at seq.
func (e *env) storedAt(t *testing.T, seq uint64) time.Time {
	t.Helper()
	st, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Time
}

// exhaust delivers the next request MAX_DELIVER times without a result, so
// that the server publishes its max-deliveries advisory.
func (e *env) exhaust(t *testing.T, seq uint64) {
	t.Helper()
	cons, err := e.js.Consumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	for i := range e.cfg.MaxDeliver {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			meta, err := msg.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if meta.Sequence.Stream != seq {
				t.Fatalf("delivery %d is of request %d, want %d", i+1, meta.Sequence.Stream, seq)
			}
			if err := msg.Nak(); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 1 {
			t.Fatalf("delivery %d: got %d messages (%v)", i+1, n, batch.Error())
		}
	}
	// The next pull finds the delivery limit reached: the advisory goes out
	// and nothing is delivered.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		t.Fatalf("request delivered beyond MAX_DELIVER: %s", msg.Data())
	}
	e.waitAdvisories(t, 1)
}

// waitAdvisories waits until the request stream holds n advisories.
func (e *env) waitAdvisories(t *testing.T, n int) {
	t.Helper()
	subject := broker.MaxDeliveriesSubject(e.cfg.RequestStream, e.cfg.ConsumerName)
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
		s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
		return err == nil && info.State.Subjects[subject] >= uint64(n)
	}, "%d advisories stored", n)
}

type observed struct {
	mu      sync.Mutex
	results []*message.Result
	dups    int
}

func (o *observed) SafetyNetResult(res *message.Result, duplicate bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if duplicate {
		o.dups++
		return
	}
	o.results = append(o.results, res)
}

func (o *observed) counts() (stored, dups int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.results), o.dups
}

// run starts the listener until the test ends.
func (e *env) run(t *testing.T, opts ...safetynet.Option) *observed {
	t.Helper()
	obs := &observed{}
	l, err := safetynet.New(e.js, e.topo, e.cfg.FailureSubject, append([]safetynet.Option{
		safetynet.WithLogger(discard()), safetynet.WithObserver(obs), safetynet.WithShutdownTimeout(5 * time.Second),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return obs
}

// waitSettled waits until every advisory has been acknowledged.
func (e *env) waitSettled(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		c, err := e.js.Consumer(t.Context(), e.cfg.RequestStream, e.topo.Advisories.Durable)
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0
	}, "advisories acknowledged")
}

// results returns every result stored in the result stream.
func (e *env) results(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(t.Context(), e.cfg.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestAdvisoryWithoutResultGetsOneFailure(t *testing.T) {
	e := setup(t)
	body := `{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`
	h := nats.Header{}
	h.Set(message.HeaderTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	seq := e.publishRequest(t, body, h)
	// The advisory is stored while no listener runs, and answered when one starts.
	e.exhaust(t, seq)
	obs := e.run(t)
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 1 {
		t.Fatalf("got %d results, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != e.cfg.FailureSubject {
		t.Errorf("result on %s, want %s", m.Subject, e.cfg.FailureSubject)
	}
	if got, want := m.Header.Get(message.HeaderMsgID), message.ResultMsgID(e.cfg.RequestStream, seq, e.storedAt(t, seq)); got != want {
		t.Errorf("Nats-Msg-Id %q, want %q", got, want)
	}
	if got := m.Header.Get(message.HeaderTraceparent); got != h.Get(message.HeaderTraceparent) {
		t.Errorf("traceparent %q not passed on", got)
	}
	var res message.Result
	if err := json.Unmarshal(m.Data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != message.StatusFailure || res.Kind() != message.KindUnavailable {
		t.Errorf("status %s kind %s, want failure unavailable", res.Status, res.Kind())
	}
	if res.AlertID != "da637472900382838869_1364969609" || res.CorrelationID != "siem-42" {
		t.Errorf("alertId %q correlationId %q", res.AlertID, res.CorrelationID)
	}
	if res.RequestSequence != seq || res.Delivery != 2 {
		t.Errorf("requestSequence %d delivery %d, want %d and 2", res.RequestSequence, res.Delivery, seq)
	}
	if res.Request == nil || *res.Request != body {
		t.Errorf("request %v, want the original body", res.Request)
	}
	if !strings.Contains(res.Error.Message, "delivery limit reached") {
		t.Errorf("message %q does not say the delivery limit was reached", res.Error.Message)
	}
	if stored, dups := obs.counts(); stored != 1 || dups != 0 {
		t.Errorf("observer saw %d stored, %d duplicates; want 1, 0", stored, dups)
	}
}

func TestAdvisoryForRequestWithResultAddsNothing(t *testing.T) {
	e := setup(t)
	seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
	// The last delivery stored its result, then crashed before the ack.
	res := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now())
	res.RequestSequence = seq
	msg, err := res.Message(e.cfg.SuccessSubject, message.ResultMsgID(e.cfg.RequestStream, seq, e.storedAt(t, seq)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	e.exhaust(t, seq)
	obs := e.run(t)
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 1 || msgs[0].Subject != e.cfg.SuccessSubject {
		t.Fatalf("got %d results, want only the success", len(msgs))
	}
	if stored, dups := obs.counts(); stored != 0 || dups != 1 {
		t.Errorf("observer saw %d stored, %d duplicates; want 0, 1", stored, dups)
	}
}

func TestAdvisoryForRequestNoLongerStored(t *testing.T) {
	e := setup(t)
	seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
	e.exhaust(t, seq)
	s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(t.Context(), seq); err != nil {
		t.Fatal(err)
	}
	e.run(t)
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 1 {
		t.Fatalf("got %d results, want 1", len(msgs))
	}
	var res message.Result
	if err := json.Unmarshal(msgs[0].Data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Kind() != message.KindUnavailable || res.RequestSequence != seq || res.Request != nil || res.AlertID != "" {
		t.Errorf("result %s: want unavailable for request %d without request or alertId", msgs[0].Data, seq)
	}
	if !strings.Contains(res.Error.Message, "no longer stored") {
		t.Errorf("message %q does not say the request is gone", res.Error.Message)
	}
}

func TestUnreadableAdvisoryIsDropped(t *testing.T) {
	e := setup(t)
	subject := broker.MaxDeliveriesSubject(e.cfg.RequestStream, e.cfg.ConsumerName)
	for _, body := range []string{"", "not json", `{"type":"other"}`, `{"stream":"X","consumer":"Y"}`} {
		if _, err := e.js.Publish(t.Context(), subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// One for another consumer, with a sequence that exists: ignored too.
	seq := e.publishRequest(t, "abc", nil)
	other, err := json.Marshal(safetynet.Advisory{Type: safetynet.AdvisoryType, Stream: e.cfg.RequestStream, Consumer: "someone-else", StreamSeq: seq, Deliveries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(t.Context(), subject, other); err != nil {
		t.Fatal(err)
	}
	obs := e.run(t)
	e.waitSettled(t)
	if msgs := e.results(t); len(msgs) != 0 {
		t.Errorf("got %d results for unreadable advisories, want none", len(msgs))
	}
	if stored, dups := obs.counts(); stored+dups != 0 {
		t.Errorf("observer saw %d results", stored+dups)
	}
}

func TestFailedPublishRetriesLater(t *testing.T) {
	e := setup(t)
	seq := e.publishRequest(t, "abc", nil)
	if err := e.js.DeleteStream(t.Context(), e.cfg.ResultStream); err != nil {
		t.Fatal(err)
	}
	l, err := safetynet.New(e.js, e.topo, e.cfg.FailureSubject, safetynet.WithPublishTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	adv, err := json.Marshal(safetynet.Advisory{Type: safetynet.AdvisoryType, Stream: e.cfg.RequestStream, Consumer: e.cfg.ConsumerName, StreamSeq: seq, Deliveries: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := l.Handle(t.Context(), &consumer.Delivery{Data: adv, Stream: e.cfg.RequestStream, StreamSeq: 99, NumDelivered: 1})
	if out.Action != consumer.Retry || out.Delay <= 0 || out.Stored {
		t.Fatalf("outcome %v delay %v stored %v, want a retry later", out.Action, out.Delay, out.Stored)
	}
	if out.Err == nil {
		t.Error("no error for a failed publish")
	}
}

func TestNewValidates(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name    string
		js      jetstream.JetStream
		subject string
		opts    []safetynet.Option
	}{
		{name: "no JetStream", subject: "f"},
		{name: "no subject", js: e.js},
		{name: "nil logger", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithLogger(nil)}},
		{name: "nil clock", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithClock(nil)}},
		{name: "nil observer", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithObserver(nil)}},
		{name: "zero publish timeout", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithPublishTimeout(0)}},
		{name: "zero shutdown timeout", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithShutdownTimeout(0)}},
		{name: "nil hook", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithHooks(nil)}},
		{name: "hooks without answers", js: e.js, subject: "f", opts: []safetynet.Option{safetynet.WithHooks(func(context.Context, *message.Result) {})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := safetynet.New(tt.js, e.topo, tt.subject, tt.opts...); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// shortWindow gives the result stream a duplicate window of 200ms and a
// probe subject, and returns a function that waits until the window has
// passed for everything stored before it is called.
func (e *env) shortWindow(t *testing.T) (forget func()) {
	t.Helper()
	s, err := e.js.Stream(t.Context(), e.cfg.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 200 * time.Millisecond
	cfg.Subjects = append(cfg.Subjects, "probe")
	if _, err := e.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		id := "probe-" + time.Now().String()
		probe := func() bool {
			ack, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: "probe", Header: nats.Header{nats.MsgIdHdr: {id}}})
			if err != nil {
				t.Fatal(err)
			}
			return !ack.Duplicate
		}
		probe()
		testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, probe, "the duplicate window to pass")
	}
}

// TestAdvisoryAfterDuplicateWindowAddsNothing: the last delivery stored its
// result and its record, then crashed before the ack, and the advisory is
// answered after the result stream's duplicate window: the record keeps a
// second result out.
func TestAdvisoryAfterDuplicateWindowAddsNothing(t *testing.T) {
	e := setup(t)
	forget := e.shortWindow(t)
	kv, err := e.js.KeyValue(t.Context(), e.topo.Answers.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	answers := handlers.NewKVAnswers(kv, e.js, e.cfg.ResultStream)
	seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
	stored := e.storedAt(t, seq)
	res := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now())
	res.RequestSequence = seq
	msg, err := res.Message(e.cfg.SuccessSubject, message.ResultMsgID(e.cfg.RequestStream, seq, stored), "")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := answers.Record(t.Context(), message.AnswerKey(seq, stored), ack.Sequence); err != nil {
		t.Fatal(err)
	}
	e.exhaust(t, seq)
	forget()
	obs := e.run(t, safetynet.WithAnswers(answers))
	e.waitSettled(t)

	results := e.resultSubjects(t)
	if len(results) != 1 || results[0] != e.cfg.SuccessSubject {
		t.Fatalf("results on %v, want only the success", results)
	}
	if stored, dups := obs.counts(); stored != 0 || dups != 1 {
		t.Errorf("observer saw %d stored, %d duplicates; want 0, 1", stored, dups)
	}
}

// TestAdvisoryForCachedAlertStoresSuccess: a request that ran out of
// deliveries (a blocked result stream, say) whose alert is in the result
// cache ends with the cached success, not a failure.
func TestAdvisoryForCachedAlertStoresSuccess(t *testing.T) {
	e := setup(t)
	cache := handlers.NewResultCache(e.js, e.cfg.ResultStream, e.cfg.SuccessSubject, time.Hour)
	const alert = "da637472900382838869_1364969609"
	if err := cache.Put(t.Context(), alert, []string{"www.example.com", "cdn.example.net"}); err != nil {
		t.Fatal(err)
	}
	seq := e.publishRequest(t, `{"alertId":"`+alert+`","correlationId":"siem-42"}`, nil)
	e.exhaust(t, seq)
	obs := e.run(t, safetynet.WithCache(cache, e.cfg.SuccessSubject))
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 1 {
		t.Fatalf("got %d results, want 1", len(msgs))
	}
	var r message.Result
	if err := json.Unmarshal(msgs[0].Data, &r); err != nil {
		t.Fatal(err)
	}
	if msgs[0].Subject != e.cfg.SuccessSubject || r.Status != message.StatusSuccess || r.Cached == nil || !*r.Cached ||
		len(r.Domains) != 2 || r.CorrelationID != "siem-42" || r.RequestSequence != seq {
		t.Errorf("result on %s: %s, want the cached success", msgs[0].Subject, msgs[0].Data)
	}
	if stored, _ := obs.counts(); stored != 1 {
		t.Errorf("observer saw %d stored results, want 1", stored)
	}
}

// TestAdvisoryFindsResultStoredWithoutRecord: the last delivery stored its
// result, wrote no record (no hooks) and crashed before the ack; the
// advisory is answered after the result stream's duplicate window. The
// result is found in the stream by its message ID: no second result.
func TestAdvisoryFindsResultStoredWithoutRecord(t *testing.T) {
	e := setup(t)
	forget := e.shortWindow(t)
	seq := e.publishRequest(t, "da637472900382838869_1364969609", nil)
	res := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now())
	res.RequestSequence = seq
	e.storeResult(t, nil, seq, res, false)
	e.exhaust(t, seq)
	forget()

	earlier := handlers.NewEarlierResults(e.js, e.cfg.ResultStream,
		[]string{e.cfg.SuccessSubject, e.cfg.FailureSubject, e.cfg.SuccessSubject + ".*", e.cfg.FailureSubject + ".*"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- earlier.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	obs := e.run(t, safetynet.WithEarlierResults(earlier))
	e.waitSettled(t)
	results := e.resultSubjects(t)
	if len(results) != 1 || results[0] != e.cfg.SuccessSubject {
		t.Fatalf("results on %v, want only the success an earlier delivery stored", results)
	}
	if stored, dups := obs.counts(); stored != 0 || dups != 1 {
		t.Errorf("observer saw %d stored, %d duplicates; want 0, 1", stored, dups)
	}
}

// resultSubjects are the subjects of the results stored, without the
// duplicate window's probes (shortWindow).
func (e *env) resultSubjects(t *testing.T) []string {
	t.Helper()
	var subjects []string
	for _, m := range e.results(t) {
		if m.Subject != "probe" {
			subjects = append(subjects, m.Subject)
		}
	}
	return subjects
}
