// Package safetynet answers the requests that ran out of deliveries without
// a result. The server publishes a max-deliveries advisory when a request
// message has been delivered MAX_DELIVER times without an acknowledgement
// (for example because every delivery crashed its replica); the request
// stream captures these advisories and a durable consumer reads them, so
// none is lost while no replica runs. For each one the Listener publishes a
// failure result of kind unavailable with the same Nats-Msg-Id that any
// delivery of that request would have used: when the request has its result
// already, the result stream drops the new one as a duplicate, so every
// request still ends with exactly one result.
package safetynet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
)

// Observer is told of each advisory the Listener answered: the failure
// result it published, and whether the result stream dropped it because the
// request had its result already.
type Observer interface {
	SafetyNetResult(res *handlers.Result, duplicate bool)
}

// Listener reads the max-deliveries advisories of the service's consumer and
// publishes the missing failure results.
type Listener struct {
	js              jetstream.JetStream
	topo            broker.Topology
	failureSubject  string
	successSubject  string
	routing         func(subject string, req handlers.Request) handlers.Routing
	cache           handlers.Cache
	answers         handlers.Answers
	logger          *slog.Logger
	provision       bool
	observer        Observer
	now             func() time.Time
	publishTimeout  time.Duration
	shutdownTimeout time.Duration
	concurrency     int
}

// Option configures a Listener.
type Option func(*Listener) error

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(n *Listener) error {
		if l == nil {
			return errors.New("safetynet: nil logger")
		}
		n.logger = l
		return nil
	}
}

// WithProvision lets the Listener create the advisory consumer again when it
// is deleted under it (PROVISION=true); otherwise it waits for an operator
// to restore it.
func WithProvision(on bool) Option {
	return func(n *Listener) error {
		n.provision = on
		return nil
	}
}

// WithCache answers a request whose alert is in the result cache with the
// cached success, published to successSubject, instead of a failure.
func WithCache(c handlers.Cache, successSubject string) Option {
	return func(n *Listener) error {
		if c == nil || successSubject == "" {
			return errors.New("safetynet: the cache and the success subject are required")
		}
		n.cache, n.successSubject = c, successSubject
		return nil
	}
}

// WithRouting sends each answer where the handler would have sent the
// request's result (its tenant's subjects, its tenant's cache entry):
// routing is handlers.Service.Routing.
func WithRouting(routing func(subject string, req handlers.Request) handlers.Routing) Option {
	return func(n *Listener) error {
		if routing == nil {
			return errors.New("safetynet: nil routing")
		}
		n.routing = routing
		return nil
	}
}

// WithAnswers reads the record of stored results before answering, so that a
// request whose result is stored gets no second one however long ago it was
// stored, and records the results it stores.
func WithAnswers(a handlers.Answers) Option {
	return func(n *Listener) error {
		if a == nil {
			return errors.New("safetynet: nil answers")
		}
		n.answers = a
		return nil
	}
}

// WithObserver reports each answered advisory to o.
func WithObserver(o Observer) Option {
	return func(n *Listener) error {
		if o == nil {
			return errors.New("safetynet: nil observer")
		}
		n.observer = o
		return nil
	}
}

// WithClock sets the clock that stamps completedAt.
func WithClock(now func() time.Time) Option {
	return func(n *Listener) error {
		if now == nil {
			return errors.New("safetynet: nil clock")
		}
		n.now = now
		return nil
	}
}

// WithPublishTimeout bounds the wait for the result stream's acknowledgement
// (default 5s).
func WithPublishTimeout(d time.Duration) Option {
	return func(n *Listener) error {
		if d <= 0 {
			return errors.New("safetynet: publish timeout must be positive")
		}
		n.publishTimeout = d
		return nil
	}
}

// WithShutdownTimeout sets the time an advisory being answered gets to
// finish once the run context ends (default 25s).
func WithShutdownTimeout(d time.Duration) Option {
	return func(n *Listener) error {
		if d <= 0 {
			return errors.New("safetynet: shutdown timeout must be positive")
		}
		n.shutdownTimeout = d
		return nil
	}
}

// New returns the Listener for the consumer of topo, publishing failure
// results to failureSubject through js.
func New(js jetstream.JetStream, topo broker.Topology, failureSubject string, opts ...Option) (*Listener, error) {
	if js == nil {
		return nil, errors.New("safetynet: JetStream is required")
	}
	if failureSubject == "" || topo.RequestStream.Name == "" || topo.Consumer.Durable == "" || topo.Advisories.Durable == "" {
		return nil, errors.New("safetynet: the failure subject, the request stream and both consumers are required")
	}
	n := &Listener{
		js:              js,
		topo:            topo,
		failureSubject:  failureSubject,
		logger:          slog.New(slog.DiscardHandler),
		now:             time.Now,
		publishTimeout:  5 * time.Second,
		shutdownTimeout: 25 * time.Second,
		concurrency:     4,
	}
	for _, opt := range opts {
		if err := opt(n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Run answers advisories until ctx ends. It binds to the advisory consumer
// again after broker restarts, and returns an error only when it cannot go
// on (the connection was closed).
func (n *Listener) Run(ctx context.Context) error {
	// The advisory consumer is bound like the request consumer, so a
	// consumer deleted under the service is created again after the last
	// advisory acknowledged, never from the start of the stream.
	t := n.topo
	t.Consumer = n.topo.Advisories
	binder := broker.NewBinder(n.js, t, n.provision, n.logger)
	cons, err := consumer.New(binder.Bind, n.Handle,
		consumer.WithConcurrency(n.concurrency),
		consumer.WithAckWait(t.Consumer.AckWait),
		consumer.WithShutdownTimeout(n.shutdownTimeout),
		consumer.WithLogger(n.logger),
		consumer.WithInfoHandler(5*time.Second, binder.Observe),
	)
	if err != nil {
		return err
	}
	return cons.Run(ctx)
}

// Handle answers one delivery of an advisory: it publishes the failure
// result of the request the advisory names and acknowledges the advisory
// once the result stream has stored it (or had a result already). When
// something fails the advisory is delivered again later.
func (n *Listener) Handle(ctx context.Context, d *handlers.Delivery) handlers.Outcome {
	adv, err := ParseAdvisory(d.Data)
	if err != nil {
		// Nothing in it can ever be answered: do not redeliver it.
		n.logger.LogAttrs(ctx, slog.LevelError, "unreadable max-deliveries advisory dropped",
			slog.Uint64("advisory_seq", d.StreamSeq), slog.Any("error", err))
		return handlers.Outcome{Action: handlers.Ack, Err: err}
	}
	if adv.Stream != n.topo.RequestStream.Name || adv.Consumer != n.topo.Consumer.Durable {
		n.logger.LogAttrs(ctx, slog.LevelWarn, "advisory of another consumer ignored",
			slog.String("stream", adv.Stream), slog.String("consumer", adv.Consumer), slog.Uint64("stream_seq", adv.StreamSeq))
		return handlers.Outcome{Action: handlers.Ack}
	}
	out := n.answer(ctx, adv)
	attrs := []slog.Attr{
		slog.String("alert_id", out.AlertID),
		slog.Uint64("stream_seq", adv.StreamSeq),
		slog.Uint64("deliveries", adv.Deliveries),
	}
	switch {
	case out.Action == handlers.Retry:
		out.Delay = handlers.DefaultRetryDelay(d.NumDelivered)
		attrs = append(attrs, slog.Duration("redeliver_in", out.Delay), slog.Any("error", out.Err))
		n.logger.LogAttrs(ctx, slog.LevelError, "delivery limit reached and its failure result not stored, trying again", attrs...)
	case out.Duplicate:
		n.logger.LogAttrs(ctx, slog.LevelInfo, "delivery limit reached by a request that has its result", attrs...)
	case out.Result.Status == handlers.StatusSuccess:
		n.logger.LogAttrs(ctx, slog.LevelWarn, "delivery limit reached: cached success result stored", attrs...)
	default:
		attrs = append(attrs, slog.String("kind", string(connector.KindUnavailable)))
		n.logger.LogAttrs(ctx, slog.LevelWarn, "delivery limit reached: failure result stored", attrs...)
	}
	if out.Stored && n.observer != nil {
		n.observer.SafetyNetResult(out.Result, out.Duplicate)
	}
	return out
}

// answer builds and publishes the result of the request adv names: the
// cached success when its alert is in the result cache, a failure
// otherwise. Nothing is published for a request whose record says its
// result is stored.
func (n *Listener) answer(ctx context.Context, adv Advisory) handlers.Outcome {
	res, rtg, stored, traceparent, err := n.failure(ctx, adv)
	if err != nil {
		return handlers.Outcome{Action: handlers.Retry, Err: err}
	}
	out := handlers.Outcome{Result: res, AlertID: res.AlertID}
	key := handlers.AnswerKey(adv.StreamSeq, stored)
	if n.answers != nil && !stored.IsZero() {
		_, ok, err := n.answers.Find(ctx, key)
		if err != nil {
			out.Action, out.Err = handlers.Retry, err
			return out
		}
		if ok {
			out.Action, out.Stored, out.Duplicate = handlers.Ack, true, true
			return out
		}
	}
	subject := rtg.FailureSubject
	if n.cache != nil && res.AlertID != "" {
		// A cache that cannot be read leaves the failure: the request has
		// run out of deliveries.
		if domains, ok, err := n.cache.Get(ctx, rtg.CacheKey); err == nil && ok {
			success := handlers.Success(res.AlertID, domains, 0, true, n.now())
			success.CorrelationID, success.RequestSequence, success.ReplayOf, success.Delivery = res.CorrelationID, res.RequestSequence, res.ReplayOf, res.Delivery
			success.Tenant = res.Tenant
			res, subject = success, rtg.SuccessSubject
			out.Result = res
		}
	}
	msg, err := res.Message(subject, handlers.ResultMsgID(adv.Stream, adv.StreamSeq, stored), traceparent)
	if err != nil {
		out.Action, out.Err = handlers.Retry, fmt.Errorf("encode result: %w", err)
		return out
	}
	// The publish gets its chance even when shutdown has begun.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.publishTimeout)
	defer cancel()
	ack, err := n.js.PublishMsg(pctx, msg)
	if err != nil {
		out.Action, out.Err = handlers.Retry, fmt.Errorf("publish result: %w", err)
		return out
	}
	out.Action, out.Stored, out.Duplicate = handlers.Ack, true, ack.Duplicate
	if n.answers != nil && !stored.IsZero() {
		if err := n.answers.Record(pctx, key, ack.Sequence); err != nil {
			n.logger.LogAttrs(ctx, slog.LevelWarn, "record of stored results unavailable",
				slog.Uint64("stream_seq", adv.StreamSeq), slog.Any("error", err))
		}
	}
	return out
}

// failure builds the failure result of the request adv names, from the
// request itself while the stream still stores it; stored is when the
// stream stored it (zero when it is gone).
func (n *Listener) failure(ctx context.Context, adv Advisory) (res *handlers.Result, rtg handlers.Routing, stored time.Time, traceparent string, err error) {
	rtg = handlers.Routing{SuccessSubject: n.successSubject, FailureSubject: n.failureSubject}
	stream, err := n.js.Stream(ctx, adv.Stream)
	if err != nil {
		return nil, rtg, time.Time{}, "", fmt.Errorf("look up stream %s: %w", adv.Stream, err)
	}
	msg, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		reason := &connector.Error{
			Kind:    connector.KindUnavailable,
			Message: fmt.Sprintf("delivery limit reached: %d deliveries ended without a result; the request is no longer stored", adv.Deliveries),
		}
		res = handlers.Failure("", reason, 0, n.now())
		res.RequestSequence, res.Delivery = adv.StreamSeq, adv.Deliveries
		return res, rtg, time.Time{}, "", nil
	}
	if err != nil {
		return nil, rtg, time.Time{}, "", fmt.Errorf("read request %d: %w", adv.StreamSeq, err)
	}
	// A body that does not decode has no alert ID; the result still names
	// the request by its sequence and carries its body.
	req, _ := handlers.Decode(msg.Data, msg.Header)
	rtg.CacheKey = req.AlertID
	if n.routing != nil {
		rtg = n.routing(msg.Subject, req)
	}
	reason := &connector.Error{
		Kind:    connector.KindUnavailable,
		Message: fmt.Sprintf("delivery limit reached: %d deliveries ended without a result", adv.Deliveries),
	}
	res = handlers.Failure(req.AlertID, reason, 0, n.now()).WithRequest(msg.Data)
	res.CorrelationID, res.Tenant = req.CorrelationID, rtg.Tenant
	res.RequestSequence, res.Delivery = adv.StreamSeq, adv.Deliveries
	if msg.Header != nil {
		traceparent = msg.Header.Get(handlers.HeaderTraceparent)
		res.ReplayOf = handlers.ReplayOf(msg.Header)
	}
	return res, rtg, msg.Time, traceparent, nil
}
