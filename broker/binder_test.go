package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/message"
)

// binderEnv is a provisioned topology, requests in it, and the stored
// results a running replica reads.
type binderEnv struct {
	cfg     *config.Config
	js      jetstream.JetStream
	topo    broker.Topology
	answers *handlers.Answers
}

func newBinderEnv(t *testing.T) *binderEnv {
	t.Helper()
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	answers := handlers.NewAnswers(handlers.AnswersConfig{JS: js, RequestStream: cfg.RequestStream, ResultStream: cfg.ResultStream,
		Subjects: message.Subjects{Request: cfg.RequestSubject, Success: cfg.SuccessSubject, Failure: cfg.FailureSubject, Plain: config.DefaultTenant},
		Consumer: cfg.ConsumerName})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- answers.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-answers.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("stored results not read")
	}
	return &binderEnv{cfg: cfg, js: js, topo: topo, answers: answers}
}

// requests stores n requests, for alerts a1, a2, ...
func (e *binderEnv) requests(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := e.js.Publish(t.Context(), e.cfg.RequestSubject, fmt.Appendf(nil, "a%d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
}

// result stores the result of the request at seq as the service would; a
// forged one names the request by its sequence but not its store time.
func (e *binderEnv) result(t *testing.T, seq uint64, forged bool) {
	t.Helper()
	s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	stored := req.Time
	if forged {
		stored = stored.Add(time.Nanosecond)
	}
	res := message.Success(string(req.Data), []string{"x.example"}, 1, false, time.Now())
	res.RequestSequence, res.Tenant = seq, config.DefaultTenant
	msg, err := res.Message(e.cfg.SuccessSubject, message.ResultMsgID(e.cfg.RequestStream, seq, stored), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
}

// ack acknowledges the next n deliveries of c and returns c's state.
func ack(t *testing.T, c jetstream.Consumer, n int) *jetstream.ConsumerInfo {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func fetchSeqs(t *testing.T, c jetstream.Consumer, n int) []uint64 {
	t.Helper()
	batch, err := c.FetchNoWait(n)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, meta.Sequence.Stream)
	}
	return seqs
}

func startOf(c jetstream.Consumer) (jetstream.DeliverPolicy, uint64) {
	cc := c.CachedInfo().Config
	return cc.DeliverPolicy, cc.OptStartSeq
}

// TestBinderRecreatesWhereProcessingStopped: a request consumer deleted
// while processing goes on is created again at the first request, after
// the acknowledgement floor this process saw, that has no result; a
// result that names the request's sequence but not its store time does
// not count.
func TestBinderRecreatesWhereProcessingStopped(t *testing.T) {
	e := newBinderEnv(t)
	e.requests(t, 8)
	for _, seq := range []uint64{1, 2, 3, 5} {
		e.result(t, seq, false)
	}
	e.result(t, 4, true)
	b := broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Consumer, true, e.answers, slog.New(slog.DiscardHandler))
	c, err := b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info := ack(t, c, 2); info.AckFloor.Stream != 2 {
		t.Fatalf("ack floor %d, want 2", info.AckFloor.Stream)
	} else {
		b.Observe(info)
	}
	if err := e.js.DeleteConsumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	// Re-created from what is stored, at once: no replica takes a request
	// meanwhile, so it may not wait for more to arrive.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	c, err = b.Bind(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if policy, start := startOf(c); policy != jetstream.DeliverByStartSequencePolicy || start != 4 {
		t.Errorf("consumer from %v %d, want by start sequence 4", policy, start)
	}
	if got := fetchSeqs(t, c, 10); fmt.Sprint(got) != "[4 5 6 7 8]" {
		t.Errorf("delivered %v, want [4 5 6 7 8]", got)
	}
}

// TestBinderAfterAnotherReplica: a consumer another replica created first
// (from what it knew) is bound as it is.
func TestBinderAfterAnotherReplica(t *testing.T) {
	e := newBinderEnv(t)
	e.requests(t, 3)
	e.result(t, 1, false)
	if err := e.js.DeleteConsumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	other := e.topo.Consumer
	other.DeliverPolicy, other.OptStartSeq = jetstream.DeliverByStartSequencePolicy, 3
	if _, err := e.js.CreateConsumer(t.Context(), e.cfg.RequestStream, other); err != nil {
		t.Fatal(err)
	}
	c, err := broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Consumer, true, e.answers, slog.New(slog.DiscardHandler)).Bind(t.Context())
	if err != nil {
		t.Fatalf("Bind after another replica: %v", err)
	}
	if _, start := startOf(c); start != 3 {
		t.Errorf("bound a consumer from %d, want the other replica's, from 3", start)
	}
}

// TestBinderRecreatesRaceWithAnotherReplica: when another replica creates
// the consumer between this one's look-up and its creation, this one binds
// to the other's.
func TestBinderRecreatesRaceWithAnotherReplica(t *testing.T) {
	e := newBinderEnv(t)
	e.requests(t, 3)
	if err := e.js.DeleteConsumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	other := e.topo.Consumer
	other.DeliverPolicy, other.OptStartSeq = jetstream.DeliverByStartSequencePolicy, 3
	js := &createdFirst{JetStream: e.js, other: other, stream: e.cfg.RequestStream}
	c, err := broker.NewBinder(js, e.cfg.RequestStream, e.topo.Consumer, true, e.answers, slog.New(slog.DiscardHandler)).Bind(t.Context())
	if err != nil {
		t.Fatalf("Bind racing another replica: %v", err)
	}
	if _, start := startOf(c); start != 3 {
		t.Errorf("bound a consumer from %d, want the other replica's, from 3", start)
	}
}

// createdFirst creates other (another replica's consumer) just before the
// first consumer this JetStream is asked to create.
type createdFirst struct {
	jetstream.JetStream
	other  jetstream.ConsumerConfig
	stream string
}

func (j *createdFirst) CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if _, err := j.JetStream.CreateConsumer(ctx, j.stream, j.other); err != nil {
		return nil, err
	}
	return j.JetStream.CreateConsumer(ctx, stream, cfg)
}

// TestBinderWithoutProvisioningWaits: with provisioning off a missing
// consumer is an error to retry, until an operator creates it.
func TestBinderWithoutProvisioningWaits(t *testing.T) {
	e := newBinderEnv(t)
	if err := e.js.DeleteConsumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	b := broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Consumer, false, e.answers, slog.New(slog.DiscardHandler))
	if _, err := b.Bind(t.Context()); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("Bind without provisioning: %v, want ErrConsumerNotFound", err)
	}
	if _, err := e.js.Consumer(t.Context(), e.cfg.RequestStream, e.cfg.ConsumerName); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer was created without provisioning: %v", err)
	}
	if _, err := e.js.CreateConsumer(t.Context(), e.cfg.RequestStream, e.topo.Consumer); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bind(t.Context()); err != nil {
		t.Errorf("Bind once the operator restored it: %v", err)
	}
}

// TestBinderForgetsFloorOfDeletedStream: a request stream deleted and
// created again numbers its requests from 1; the acknowledgement floor
// seen on the old one skips none of them.
func TestBinderForgetsFloorOfDeletedStream(t *testing.T) {
	e := newBinderEnv(t)
	e.requests(t, 5)
	b := broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Consumer, true, e.answers, slog.New(slog.DiscardHandler))
	c, err := b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Observe(ack(t, c, 5))
	if err := e.js.DeleteStream(t.Context(), e.cfg.RequestStream); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(t.Context(), e.topo.RequestStream); err != nil {
		t.Fatal(err)
	}
	e.requests(t, 3)
	c, err = b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchSeqs(t, c, 10); fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("delivered %v, want every request of the new stream", got)
	}
}

// TestAdvisoryConsumerRecreatedAfterItsFloor: the safety net's consumer,
// missing, starts after the acknowledgement floor this process saw.
func TestAdvisoryConsumerRecreatedAfterItsFloor(t *testing.T) {
	e := newBinderEnv(t)
	e.requests(t, 3)
	subject := broker.MaxDeliveriesSubject(e.cfg.RequestStream, e.cfg.ConsumerName)
	for req := range 3 { // advisories 4, 5, 6
		adv := fmt.Sprintf(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":%q,"consumer":%q,"stream_seq":%d,"deliveries":10}`, e.cfg.RequestStream, e.cfg.ConsumerName, req+1)
		if _, err := e.js.Publish(t.Context(), subject, []byte(adv)); err != nil {
			t.Fatal(err)
		}
	}
	b := broker.NewBinder(e.js, e.cfg.RequestStream, e.topo.Advisories, true, nil, slog.New(slog.DiscardHandler))
	c, err := b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Observe(ack(t, c, 1))
	if err := e.js.DeleteConsumer(t.Context(), e.cfg.RequestStream, e.topo.Advisories.Durable); err != nil {
		t.Fatal(err)
	}
	c, err = b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchSeqs(t, c, 10); fmt.Sprint(got) != "[5 6]" {
		t.Errorf("delivered advisories %v, want [5 6], after the one acknowledged", got)
	}
}
