package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testNow is the clock of the results' completedAt.
var testNow = time.Date(2026, 11, 27, 9, 14, 3, 512_000_000, time.UTC)

const (
	reqStream    = "REQ"
	resultStream = "RESULTS"
	reqSubj      = "t.requests"
	successSubj  = "t.success"
	failureSubj  = "t.failure"
	durable      = "alert-domains"
	// window is the result stream's duplicate window in these tests.
	window = 2 * time.Minute
	// old is an age beyond half the window: such a request is no longer
	// answered from memory alone.
	old = window

	// advisories is the subject of the max-deliveries advisories the
	// request stream captures (broker.MaxDeliveriesSubject).
	advisories = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + reqStream + "." + durable

	alphaEntra = "6f1c2b9e-0000-4000-8000-00000000000a"
	bravoEntra = "6f1c2b9e-0000-4000-8000-00000000000b"
)

var subjects = message.Subjects{Request: reqSubj, Success: successSubj, Failure: failureSubj, Plain: config.DefaultTenant}

// env is a nats-server with the service's two streams and the request
// consumer, and the tenants a Service serves: "default" (mde), "alpha"
// (graph) and "bravo" (mde), each asked through calls.
type env struct {
	js      jetstream.JetStream
	results jetstream.Stream
	calls   *lookups
	tenants *tenants.Router
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, url := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, url)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: reqStream, Subjects: []string{reqSubj, reqSubj + ".*", advisories}}); err != nil {
		t.Fatal(err)
	}
	results, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: resultStream,
		Subjects: []string{successSubj, failureSubj, successSubj + ".*", failureSubj + ".*"}, Duplicates: window})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(t.Context(), reqStream, jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	calls := &lookups{}
	set, err := tenants.New([]config.Tenant{
		{Name: config.DefaultTenant, API: connector.MDE},
		{Name: "alpha", API: connector.Graph, Credential: connector.CredentialConfig{TenantID: alphaEntra}},
		{Name: "bravo", API: connector.MDE, Credential: connector.CredentialConfig{TenantID: bravoEntra}},
	}, calls.build)
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, results: results, calls: calls, tenants: tenants.NewRouter(set)}
}

// lookups answers the calls of every tenant with answer (by default the
// domain <tenant>.example) and records them as tenant/alert.
type lookups struct {
	mu     sync.Mutex
	made   []string
	answer func(ctx context.Context, tenant, alertID string) (connector.Result, error)
}

func (l *lookups) build(t *config.Tenant) (tenants.Lookup, error) {
	return lookupFunc(func(ctx context.Context, alertID string) (connector.Result, error) {
		l.mu.Lock()
		l.made = append(l.made, t.Name+"/"+alertID)
		answer := l.answer
		l.mu.Unlock()
		if answer != nil {
			return answer(ctx, t.Name, alertID)
		}
		return connector.Result{Domains: []string{t.Name + ".example"}, Attempts: 1}, nil
	}), nil
}

// set makes answer the answer of every call from now on.
func (l *lookups) set(answer func(ctx context.Context, tenant, alertID string) (connector.Result, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answer = answer
}

// taken returns the calls made since the last time it was asked.
func (l *lookups) taken() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	made := l.made
	l.made = nil
	return made
}

type lookupFunc func(ctx context.Context, alertID string) (connector.Result, error)

func (f lookupFunc) Domains(ctx context.Context, alertID string) (connector.Result, error) {
	return f(ctx, alertID)
}

// clock is time.Now moved on by an offset a test sets: a request stored a
// moment ago looks as old as the test needs.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// ignored records the reasons Answers gives for results it does not believe.
type ignored struct {
	mu      sync.Mutex
	reasons []string
}

func (i *ignored) add(reason string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.reasons = append(i.reasons, reason)
}

func (i *ignored) taken() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	r := i.reasons
	i.reasons = nil
	return r
}

// replica is one process's view of the streams: its Answers (running until
// the test ends) and its Service.
type replica struct {
	answers *Answers
	svc     *Service
	clock   *clock
	ignored *ignored
}

type replicaOpt func(*replica, *AnswersConfig, *Config)

func withCacheTTL(d time.Duration) replicaOpt {
	return func(_ *replica, a *AnswersConfig, _ *Config) { a.CacheTTL = d }
}

func withJS(js JetStream) replicaOpt {
	return func(_ *replica, _ *AnswersConfig, c *Config) { c.JS = js }
}

// withClockAhead starts the replica with its clock d ahead.
func withClockAhead(d time.Duration) replicaOpt {
	return func(r *replica, _ *AnswersConfig, _ *Config) { r.clock.advance(d) }
}

func withConfig(f func(*Config)) replicaOpt {
	return func(_ *replica, _ *AnswersConfig, c *Config) { f(c) }
}

// replica starts a replica on e and waits until its Answers has read the
// stored results.
func (e *env) replica(t *testing.T, opts ...replicaOpt) *replica {
	t.Helper()
	r := &replica{clock: &clock{}, ignored: &ignored{}}
	acfg := AnswersConfig{JS: e.js, RequestStream: reqStream, ResultStream: resultStream, Subjects: subjects,
		Consumer: durable, Ignored: r.ignored.add, Now: r.clock.Now}
	cfg := Config{JS: e.js, Tenants: e.tenants, Subjects: subjects,
		Now: func() time.Time { return testNow }}
	for _, o := range opts {
		o(r, &acfg, &cfg)
	}
	r.answers = NewAnswers(acfg)
	run(t, r.answers)
	cfg.Answers = r.answers
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	return r
}

// run runs a until the test ends, and waits until it is ready.
func run(t *testing.T, a *Answers) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Answers.Run: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the stored results were not read within 10s")
	}
}

// request stores a request on subject and returns its first delivery, as
// the request consumer hands it on.
func (e *env) request(t *testing.T, subject, body string, header nats.Header) *consumer.Delivery {
	t.Helper()
	ack, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: []byte(body), Header: header})
	if err != nil {
		t.Fatal(err)
	}
	return e.delivery(t, ack.Sequence)
}

// delivery is the first delivery of the request stored at seq.
func (e *env) delivery(t *testing.T, seq uint64) *consumer.Delivery {
	t.Helper()
	s, err := e.js.Stream(t.Context(), reqStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return &consumer.Delivery{Subject: m.Subject, Data: m.Data, Header: m.Header, Stream: reqStream, StreamSeq: seq,
		Stored: m.Time, NumDelivered: 1, MaxDeliver: 10}
}

// again is the next delivery of d.
func again(d *consumer.Delivery) *consumer.Delivery {
	next := *d
	next.NumDelivered++
	return &next
}

// stored returns every message of the result stream.
func (e *env) stored(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	info, err := e.results.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := e.results.GetMsg(t.Context(), seq)
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

// decode reads a stored result.
func decode(t *testing.T, m *jetstream.RawStreamMsg) message.Result {
	t.Helper()
	var r message.Result
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("result %s: %v", m.Data, err)
	}
	return r
}

// forge publishes a result on subject as someone other than the service
// might: res under the message ID msgID, with the headers the service
// would set, changed by edit.
func (e *env) forge(t *testing.T, subject, msgID string, res *message.Result, edit func(nats.Header)) uint64 {
	t.Helper()
	msg, err := res.Message(subject, msgID, "")
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(msg.Header)
	}
	ack, err := e.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Duplicate {
		t.Fatalf("forged result %s dropped as a duplicate", msgID)
	}
	return ack.Sequence
}

// idOf is the message ID of the result of the request d delivers.
func idOf(d *consumer.Delivery) string { return message.ResultMsgID(d.Stream, d.StreamSeq, d.Stored) }

// requestOf is the request d delivers.
func requestOf(d *consumer.Delivery) message.StoredRequest { return storedRequest(d) }

// failingJS fails the next fail publishes with err (nats.ErrNoResponders
// when nil), then publishes for real; it counts every publish.
type failingJS struct {
	JetStream
	fail      atomic.Int32
	err       error
	published atomic.Int32
	attempted chan struct{} // when set, told of each failed publish
}

func (p *failingJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	p.published.Add(1)
	if p.fail.Add(-1) >= 0 {
		if p.attempted != nil {
			p.attempted <- struct{}{}
		}
		return nil, cmpErr(p.err, nats.ErrNoResponders)
	}
	return p.JetStream.PublishMsg(ctx, m, opts...)
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
