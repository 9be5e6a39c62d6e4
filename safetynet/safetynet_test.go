package safetynet_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/safetynet"
	"github.com/alert-domains/alert-domains/tenants"
)

const alert = "da637472900382838869_1364969609"

// env is a JetStream server with the service's topology (MAX_DELIVER=2),
// and the calls made to the one tenant, default.
type env struct {
	cfg   *config.Config
	topo  broker.Topology
	js    jetstream.JetStream
	calls atomic.Int32
}

func setup(t *testing.T) *env {
	t.Helper()
	_, url := testenv.EmbeddedJetStream(t)
	cfg, err := config.Load(config.MapEnv(map[string]string{"MAX_DELIVER": "2", "CACHE_TTL": "1h", "ACK_WAIT": "5s"}))
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

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (e *env) subjects() message.Subjects {
	return message.Subjects{Request: e.cfg.RequestSubject, Success: e.cfg.SuccessSubject, Failure: e.cfg.FailureSubject, Plain: config.DefaultTenant}
}

// net is a replica's request handler chain and safety net.
type net struct {
	answers  *handlers.Answers
	svc      *handlers.Service
	listener *safetynet.Listener
	ignored  *reasons
	answered *reasons // "stored" or "duplicate", one per advisory answered
}

type reasons struct {
	mu   sync.Mutex
	seen []string
}

func (r *reasons) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, s)
}

func (r *reasons) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

type netOpt func(*handlers.AnswersConfig, *[]consumer.Middleware)

// withClockAhead makes the replica's clock run ahead: every request looks
// old, beyond the result stream's duplicate window.
func withClockAhead(d time.Duration) netOpt {
	return func(a *handlers.AnswersConfig, _ *[]consumer.Middleware) {
		a.Now = func() time.Time { return time.Now().Add(d) }
	}
}

func withMiddleware(mw ...consumer.Middleware) netOpt {
	return func(_ *handlers.AnswersConfig, chain *[]consumer.Middleware) { *chain = append(*chain, mw...) }
}

// net starts a replica on e (its stored results read) and returns its
// parts; its safety net does not run until start.
func (e *env) net(t *testing.T, opts ...netOpt) *net {
	t.Helper()
	n := &net{ignored: &reasons{}, answered: &reasons{}}
	acfg := handlers.AnswersConfig{JS: e.js, RequestStream: e.cfg.RequestStream, ResultStream: e.cfg.ResultStream,
		Subjects: e.subjects(), Consumer: e.cfg.ConsumerName, CacheTTL: e.cfg.CacheTTL,
		Ignored: n.ignored.add}
	var chain []consumer.Middleware
	for _, o := range opts {
		o(&acfg, &chain)
	}
	n.answers = handlers.NewAnswers(acfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.answers.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-n.answers.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("stored results not read")
	}
	set, err := tenants.New([]config.Tenant{{Name: config.DefaultTenant, API: connector.MDE}}, func(*config.Tenant) (tenants.Lookup, error) {
		return lookupFunc(func(context.Context, string) (connector.Result, error) {
			e.calls.Add(1)
			return connector.Result{Domains: []string{"www.example.com"}, Attempts: 1}, nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n.svc, err = handlers.New(handlers.Config{JS: e.js, Answers: n.answers, Tenants: tenants.NewRouter(set),
		Subjects: e.subjects()})
	if err != nil {
		t.Fatal(err)
	}
	n.listener, err = safetynet.New(safetynet.Config{
		JS: e.js, RequestStream: e.cfg.RequestStream, Consumer: e.cfg.ConsumerName,
		Handler: consumer.Chain(n.svc.Handle, chain...), Logger: discard(),
		Answered: func(duplicate bool) {
			if duplicate {
				n.answered.add("duplicate")
			} else {
				n.answered.add("stored")
			}
		},
		Bind:    broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Advisories, true, nil, discard()).Bind,
		AckWait: e.topo.Advisories.AckWait, ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type lookupFunc func(ctx context.Context, id string) (connector.Result, error)

func (f lookupFunc) Domains(ctx context.Context, id string) (connector.Result, error) {
	return f(ctx, id)
}

// start runs the listener until the test ends.
func (n *net) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.listener.Run(ctx) }()
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

// storeResult stores res as the last delivery of the request at seq
// would have, before it crashed.
func (e *env) storeResult(t *testing.T, seq uint64, res *message.Result) {
	t.Helper()
	res.RequestSequence, res.Tenant = seq, config.DefaultTenant
	msg, err := res.Message(res.Subject(e.cfg.SuccessSubject, e.cfg.FailureSubject), message.ResultMsgID(e.cfg.RequestStream, seq, e.storedAt(t, seq)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
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
	subject := broker.MaxDeliveriesSubject(e.cfg.RequestStream, e.cfg.ConsumerName)
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
		s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
		return err == nil && info.State.Subjects[subject] >= 1
	}, "the advisory stored")
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

func decode(t *testing.T, m *jetstream.RawStreamMsg) message.Result {
	t.Helper()
	var r message.Result
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("result %s: %v", m.Data, err)
	}
	return r
}

// TestAdvisoryWithoutResultGetsOneFailure: a request out of deliveries
// without a result gets an unavailable failure, under the message ID every
// delivery of it uses, without a call; the advisory was stored while no
// listener ran.
func TestAdvisoryWithoutResultGetsOneFailure(t *testing.T) {
	e := setup(t)
	body := `{"alertId":"` + alert + `","correlationId":"siem-42"}`
	h := nats.Header{}
	h.Set(message.HeaderTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	seq := e.publishRequest(t, body, h)
	e.exhaust(t, seq)
	n := e.net(t)
	n.start(t)
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 1 {
		t.Fatalf("got %d results, want 1", len(msgs))
	}
	m, res := msgs[0], decode(t, msgs[0])
	if m.Subject != e.cfg.FailureSubject || res.Kind() != message.KindUnavailable || res.AlertID != alert || res.CorrelationID != "siem-42" ||
		res.RequestSequence != seq || res.Delivery != 2 || res.Attempts != 0 || res.Request == nil || *res.Request != body ||
		!strings.Contains(res.Error.Message, "delivery limit reached") {
		t.Errorf("result on %s: %s; want the unavailable failure of request %d", m.Subject, m.Data, seq)
	}
	if got, want := m.Header.Get(message.HeaderMsgID), message.ResultMsgID(e.cfg.RequestStream, seq, e.storedAt(t, seq)); got != want {
		t.Errorf("Nats-Msg-Id %q, want %q", got, want)
	}
	if got := m.Header.Get(message.HeaderTraceparent); got != h.Get(message.HeaderTraceparent) {
		t.Errorf("traceparent %q not passed on", got)
	}
	if c := e.calls.Load(); c != 0 {
		t.Errorf("%d calls for a request out of deliveries", c)
	}
	if got := n.answered.all(); !slices.Equal(got, []string{"stored"}) {
		t.Errorf("answered %v, want one stored", got)
	}
}

// TestAdvisoryForCachedAlertStoresSuccess: a request out of deliveries (a
// blocked result stream, say) whose alert has a recent success ends with
// the cached success, not a failure.
func TestAdvisoryForCachedAlertStoresSuccess(t *testing.T) {
	e := setup(t)
	earlier := e.publishRequest(t, alert, nil)
	e.storeResult(t, earlier, message.Success(alert, []string{"www.example.com", "cdn.example.net"}, 1, false, time.Now()))
	seq := e.publishRequest(t, `{"alertId":"`+alert+`","correlationId":"siem-42"}`, nil)
	cons, err := e.js.Consumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() { // the earlier request, answered
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	e.exhaust(t, seq)
	n := e.net(t)
	n.start(t)
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 2 {
		t.Fatalf("got %d results, want 2", len(msgs))
	}
	r := decode(t, msgs[1])
	if msgs[1].Subject != e.cfg.SuccessSubject || r.Status != message.StatusSuccess || r.Cached == nil || !*r.Cached || r.Attempts != 0 ||
		!slices.Equal(r.Domains, []string{"www.example.com", "cdn.example.net"}) || r.CorrelationID != "siem-42" || r.RequestSequence != seq {
		t.Errorf("result on %s: %s, want the cached success", msgs[1].Subject, msgs[1].Data)
	}
	if c := e.calls.Load(); c != 0 {
		t.Errorf("%d calls", c)
	}
}

// TestAdvisoryForRequestWithResultAddsNothing: the last delivery stored
// its result and crashed before the acknowledgement. Whether the advisory
// is answered at once (the result is known) or long after (the result is
// looked for in the stream), nothing is published and the advisory is
// acknowledged.
func TestAdvisoryForRequestWithResultAddsNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []netOpt
	}{
		{name: "at once"},
		{name: "beyond the duplicate window", opts: []netOpt{withClockAhead(time.Hour)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			seq := e.publishRequest(t, alert, nil)
			e.storeResult(t, seq, message.Failure(alert, &message.Error{Kind: message.KindNotFound}, 1, time.Now()))
			e.exhaust(t, seq)
			n := e.net(t, tt.opts...)
			n.start(t)
			e.waitSettled(t)
			msgs := e.results(t)
			if len(msgs) != 1 || msgs[0].Subject != e.cfg.FailureSubject {
				t.Fatalf("got %d results, want only the one stored", len(msgs))
			}
			if res := decode(t, msgs[0]); res.Kind() != message.KindNotFound {
				t.Errorf("result %s, want the one stored", msgs[0].Data)
			}
			if got := n.answered.all(); !slices.Equal(got, []string{"duplicate"}) {
				t.Errorf("answered %v, want one duplicate", got)
			}
		})
	}
}

// TestAdvisoryForRequestNoLongerStored: a request the stream no longer
// holds gets a failure without alert ID or request, that says so; a
// replica reading it takes it for the service's.
func TestAdvisoryForRequestNoLongerStored(t *testing.T) {
	e := setup(t)
	seq := e.publishRequest(t, alert, nil)
	e.exhaust(t, seq)
	s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(t.Context(), seq); err != nil {
		t.Fatal(err)
	}
	e.net(t).start(t)
	e.waitSettled(t)

	msgs := e.results(t)
	if len(msgs) != 1 {
		t.Fatalf("got %d results, want 1", len(msgs))
	}
	res := decode(t, msgs[0])
	if res.Kind() != message.KindUnavailable || res.RequestSequence != seq || res.Request != nil || res.AlertID != "" ||
		!strings.Contains(res.Error.Message, "no longer stored") {
		t.Errorf("result %s: want unavailable for request %d without request or alertId, saying it is gone", msgs[0].Data, seq)
	}
	if got := e.net(t).ignored.all(); len(got) != 0 {
		t.Errorf("a replica counted the safety net's failure as not the service's: %v", got)
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
	n := e.net(t)
	n.start(t)
	e.waitSettled(t)
	if msgs := e.results(t); len(msgs) != 0 {
		t.Errorf("got %d results for unreadable advisories, want none", len(msgs))
	}
	if got := n.answered.all(); len(got) != 0 {
		t.Errorf("answered %v", got)
	}
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

// TestFailedPublishRetriesLater: an advisory whose result cannot be stored
// is delivered again later, not acknowledged.
func TestFailedPublishRetriesLater(t *testing.T) {
	e := setup(t)
	seq := e.publishRequest(t, "abc", nil)
	n := e.net(t)
	if err := e.js.DeleteStream(t.Context(), e.cfg.ResultStream); err != nil {
		t.Fatal(err)
	}
	out := n.listener.Handle(t.Context(), e.advisory(t, seq))
	if out.Action != consumer.Retry || out.Delay <= 0 || out.Stored || out.Err == nil {
		t.Fatalf("outcome %v delay %v stored %v err %v, want a retry later", out.Action, out.Delay, out.Stored, out.Err)
	}
}

func TestNewValidates(t *testing.T) {
	e := setup(t)
	n := e.net(t)
	bind := broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Advisories, true, nil, discard()).Bind
	valid := safetynet.Config{JS: e.js, RequestStream: e.cfg.RequestStream, Consumer: e.cfg.ConsumerName, Handler: n.svc.Handle, Bind: bind}
	if _, err := safetynet.New(valid); err != nil {
		t.Fatalf("New: %v", err)
	}
	for name, change := range map[string]func(*safetynet.Config){
		"no JetStream":      func(c *safetynet.Config) { c.JS = nil },
		"no handler":        func(c *safetynet.Config) { c.Handler = nil },
		"no binder":         func(c *safetynet.Config) { c.Bind = nil },
		"no request stream": func(c *safetynet.Config) { c.RequestStream = "" },
		"no consumer":       func(c *safetynet.Config) { c.Consumer = "" },
	} {
		cfg := valid
		change(&cfg)
		if _, err := safetynet.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// hookRun is one run of the hooks middleware: the result, and what the
// result stream and the advisory consumer held meanwhile.
type hookRun struct {
	res        *message.Result
	stored     uint64 // results in the result stream
	ackPending int    // advisories delivered and not acknowledged
	err        error
}

// watched records, around the result hooks, what the streams held when
// they ran.
func (e *env) watched(runs chan<- hookRun) consumer.Middleware {
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
			out := next(ctx, d)
			if !out.Stored || out.Result == nil {
				return out
			}
			r := hookRun{res: out.Result}
			if st, err := e.js.Stream(ctx, e.cfg.ResultStream); err != nil {
				r.err = err
			} else {
				r.stored = st.CachedInfo().State.Msgs
			}
			if c, err := e.js.Consumer(ctx, e.cfg.RequestStream, e.topo.Advisories.Durable); err != nil {
				r.err = err
			} else {
				r.ackPending = c.CachedInfo().NumAckPending
			}
			runs <- r
			return out
		}
	}
}

// TestHooksRunThroughTheSameChain: the safety net hands requests to the
// handler chain of every delivery, so the result hooks run for what it
// stores (the failure, a cached success) and for a result the last
// delivery stored before it crashed (its hook may not have run), once the
// result is stored and before the advisory is acknowledged.
func TestHooksRunThroughTheSameChain(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cached  bool // a success for the alert is stored
		stored  bool // the request's last delivery stored its result
		removed bool // and the result stream removed it since
		status  string
		kind    message.Kind
		results uint64
	}{
		{name: "failure", status: message.StatusFailure, kind: message.KindUnavailable, results: 1},
		{name: "cached success", cached: true, status: message.StatusSuccess, results: 2},
		{name: "stored by the last delivery", stored: true, status: message.StatusSuccess, results: 1},
		// Stored and since removed by the result stream's limits: no result
		// to give the hooks, and nothing stored again.
		{name: "stored and since removed", stored: true, removed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			if tt.cached {
				earlier := e.publishRequest(t, alert, nil)
				e.storeResult(t, earlier, message.Success(alert, []string{"www.example.com"}, 1, false, time.Now()))
				cons, err := e.js.Consumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName)
				if err != nil {
					t.Fatal(err)
				}
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				for m := range batch.Messages() {
					if err := m.DoubleAck(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
			}
			seq := e.publishRequest(t, `{"alertId":"`+alert+`","correlationId":"siem-42"}`, nil)
			if tt.stored {
				res := message.Success(alert, []string{"www.example.com"}, 1, false, time.Now())
				res.CorrelationID = "siem-42"
				e.storeResult(t, seq, res)
			}
			e.exhaust(t, seq)
			out := filepath.Join(t.TempDir(), "hook.log")
			hooks, err := handlers.NewHooks("tee -a "+out, "tee -a "+out, 5*time.Second, nil, nil, discard())
			if err != nil {
				t.Fatal(err)
			}
			runs := make(chan hookRun, 4)
			n := e.net(t, withMiddleware(hooks.Middleware(), e.watched(runs)))
			if tt.removed {
				rs, err := e.js.Stream(t.Context(), e.cfg.ResultStream)
				if err != nil {
					t.Fatal(err)
				}
				if err := rs.DeleteMsg(t.Context(), rs.CachedInfo().State.LastSeq); err != nil {
					t.Fatal(err)
				}
			}
			n.start(t)
			e.waitSettled(t)
			close(runs)

			var got []hookRun
			for r := range runs {
				got = append(got, r)
			}
			if tt.removed {
				if _, err := os.Stat(out); len(got) != 0 || !errors.Is(err, os.ErrNotExist) {
					t.Errorf("hooks ran %d times (%v), want none", len(got), err)
				}
				if msgs := e.results(t); len(msgs) != 0 {
					t.Errorf("%d results stored again", len(msgs))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("hooks ran %d times, want once", len(got))
			}
			r := got[0]
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.res.Status != tt.status || r.res.Kind() != tt.kind || r.res.AlertID != alert || r.res.CorrelationID != "siem-42" || r.res.RequestSequence != seq {
				t.Errorf("hooks given %+v", r.res)
			}
			if r.stored != tt.results || r.ackPending != 1 {
				t.Errorf("while the hooks ran: %d results stored, %d advisories unacknowledged; want %d and 1", r.stored, r.ackPending, tt.results)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("the hook did not run: %v", err)
			}
			var hooked message.Result
			if err := json.Unmarshal(data, &hooked); err != nil || hooked.Status != tt.status || hooked.RequestSequence != seq {
				t.Errorf("the hook got %s (%v)", data, err)
			}
		})
	}
}
