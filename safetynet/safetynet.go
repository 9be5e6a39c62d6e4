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
//
// With WithHooks the Listener also runs the result hook of each request it
// answers, between the stored result and the advisory's acknowledgement, as
// the request handler does before it acknowledges a request: for the
// result it stores, and for the result an earlier delivery stored (that
// delivery may have crashed while its hook ran, with no delivery left to run
// it again).
package safetynet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/message"
)

// Observer is told of each advisory the Listener answered: the failure
// result it published, and whether the result stream dropped it because the
// request had its result already.
type Observer interface {
	SafetyNetResult(res *message.Result, duplicate bool)
}

// Listener reads the max-deliveries advisories of the service's consumer and
// publishes the missing failure results.
type Listener struct {
	js              jetstream.JetStream
	topo            broker.Topology
	failureSubject  string
	successSubject  string
	routing         func(subject string, req message.Request) handlers.Routing
	cache           handlers.Cache
	answers         handlers.Answers
	earlier         *handlers.EarlierResults
	logger          *slog.Logger
	provision       bool
	observer        Observer
	now             func() time.Time
	publishTimeout  time.Duration
	shutdownTimeout time.Duration
	concurrency     int
	results         *handlers.ResultPublisher
	hook            func(ctx context.Context, res *message.Result)
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
func WithRouting(routing func(subject string, req message.Request) handlers.Routing) Option {
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

// WithEarlierResults looks in the result stream for a result an earlier
// delivery stored under the request's message ID, when the request has no
// record and is old enough for the stream's duplicate window to have
// forgotten it (half the window, as the handler does): the last delivery
// may have stored its result and stopped before the acknowledgement, and
// the advisory be answered after a longer outage. e must be running
// (EarlierResults.Run).
func WithEarlierResults(e *handlers.EarlierResults) Option {
	return func(n *Listener) error {
		if e == nil {
			return errors.New("safetynet: nil earlier results")
		}
		n.earlier = e
		return nil
	}
}

// WithHooks runs hook for the stored result of each request the Listener
// answers (the result it stored, or the one an earlier delivery stored),
// after the result is stored and before the advisory is acknowledged: a
// crash in between runs it again, so it runs at least once. hook is
// handlers.Hooks.Run, which gives the program its own time limit. It needs
// WithAnswers, the only way to the result an earlier delivery stored.
func WithHooks(hook func(ctx context.Context, res *message.Result)) Option {
	return func(n *Listener) error {
		if hook == nil {
			return errors.New("safetynet: nil hook")
		}
		n.hook = hook
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
	if n.hook != nil && n.answers == nil {
		return nil, errors.New("safetynet: hooks need the record of stored results (WithAnswers)")
	}
	// One attempt per delivery of the advisory (its answer cost no Defender
	// call), and no size limit: the failure is small, and a cached success
	// was stored once already.
	n.results = &handlers.ResultPublisher{Pub: js, Answers: n.answers, Timeout: n.publishTimeout, Now: n.now}
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
// result of the request the advisory names, runs its hook (WithHooks), and
// acknowledges the advisory once the result stream has stored the result
// (or had one already). When something fails the advisory is delivered
// again later.
func (n *Listener) Handle(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
	adv, err := ParseAdvisory(d.Data)
	if err != nil {
		// Nothing in it can ever be answered: do not redeliver it.
		n.logger.LogAttrs(ctx, slog.LevelError, "unreadable max-deliveries advisory dropped",
			slog.Uint64("advisory_seq", d.StreamSeq), slog.Any("error", err))
		return consumer.Outcome{Action: consumer.Decide(consumer.Facts{NothingToAnswer: true}), Err: err}
	}
	if adv.Stream != n.topo.RequestStream.Name || adv.Consumer != n.topo.Consumer.Durable {
		n.logger.LogAttrs(ctx, slog.LevelWarn, "advisory of another consumer ignored",
			slog.String("stream", adv.Stream), slog.String("consumer", adv.Consumer), slog.Uint64("stream_seq", adv.StreamSeq))
		return consumer.Outcome{Action: consumer.Decide(consumer.Facts{NothingToAnswer: true})}
	}
	out, hook := n.answer(ctx, adv)
	attrs := []slog.Attr{
		slog.String("alert_id", out.AlertID),
		slog.Uint64("stream_seq", adv.StreamSeq),
		slog.Uint64("deliveries", adv.Deliveries),
	}
	switch {
	case out.Action == consumer.Retry:
		out.Delay = consumer.DefaultRetryDelay(d.NumDelivered)
		attrs = append(attrs, slog.Duration("redeliver_in", out.Delay), slog.Any("error", out.Err))
		n.logger.LogAttrs(ctx, slog.LevelError, "delivery limit reached and the request not answered yet, trying again", attrs...)
	case out.Duplicate:
		n.logger.LogAttrs(ctx, slog.LevelInfo, "delivery limit reached by a request that has its result", attrs...)
	case out.Result.Status == message.StatusSuccess:
		n.logger.LogAttrs(ctx, slog.LevelWarn, "delivery limit reached: cached success result stored", attrs...)
	default:
		attrs = append(attrs, slog.String("kind", string(message.KindUnavailable)))
		n.logger.LogAttrs(ctx, slog.LevelWarn, "delivery limit reached: failure result stored", attrs...)
	}
	if out.Stored && n.observer != nil {
		n.observer.SafetyNetResult(out.Result, out.Duplicate)
	}
	if hook {
		// The result is stored and the advisory not yet acknowledged: a
		// crash during the hook delivers the advisory again, which finds
		// the stored result and runs the hook again.
		n.hook(ctx, out.Result)
	}
	return out
}

// answer builds and publishes the result of the request adv names: the
// cached success when its alert is in the result cache, a failure
// otherwise. Nothing is published for a request whose record says its
// result is stored. hook reports that the outcome's Result is the stored
// result and its hook is due.
func (n *Listener) answer(ctx context.Context, adv Advisory) (out consumer.Outcome, hook bool) {
	res, rtg, stored, traceparent, err := n.failure(ctx, adv)
	if err != nil {
		return consumer.Outcome{Action: consumer.Decide(consumer.Facts{}), Err: err}, false
	}
	out = consumer.Outcome{Result: res, AlertID: res.AlertID}
	key := message.AnswerKey(adv.StreamSeq, stored)
	if n.answers != nil && !stored.IsZero() {
		resultSeq, ok, err := n.answers.Find(ctx, key)
		if err != nil {
			out.Action, out.Err = consumer.Decide(consumer.Facts{}), err
			return out, false
		}
		if ok {
			return n.recorded(ctx, out, resultSeq, n.answers)
		}
	}
	if resultSeq, ok := n.findEarlier(ctx, adv, stored); ok {
		return n.recorded(ctx, out, resultSeq, n.earlier)
	}
	if n.cache != nil && res.AlertID != "" {
		// A cache that cannot be read leaves the failure: the request has
		// run out of deliveries.
		if domains, ok, err := n.cache.Get(ctx, rtg.CacheKey); err == nil && ok {
			success := message.Success(res.AlertID, domains, 0, true, n.now())
			success.CorrelationID, success.RequestSequence, success.ReplayOf, success.Delivery = res.CorrelationID, res.RequestSequence, res.ReplayOf, res.Delivery
			success.Tenant, success.API = res.Tenant, res.API
			res = success
		}
	}
	out = n.results.Publish(ctx, handlers.Publication{
		Stream: adv.Stream, Seq: adv.StreamSeq, Stored: stored,
		Result: res, SuccessSubject: rtg.SuccessSubject, FailureSubject: rtg.FailureSubject, Traceparent: traceparent,
		Record: n.answers != nil && !stored.IsZero(),
	}, nil)
	if out.RecordErr != nil {
		n.logger.LogAttrs(ctx, slog.LevelWarn, "record of stored results unavailable",
			slog.Uint64("stream_seq", adv.StreamSeq), slog.Any("error", out.RecordErr))
	}
	if n.hook == nil || !out.Stored || out.Action == consumer.Retry {
		return out, false
	}
	if out.Duplicate && out.Result == res {
		// An earlier answer stored the result, and the publisher, which
		// swaps in the stored copy of a duplicate when it reads it, could
		// not: with no error the result stream no longer holds it (nothing
		// to run the hook with); otherwise answer again later, rather
		// than run the hook with a result that was not stored.
		if out.RecordErr != nil {
			out.Action, out.Stored, out.Err = consumer.Decide(consumer.Facts{}), false, out.RecordErr
		}
		return out, false
	}
	return out, true
}

// findEarlier looks for the result an earlier delivery of the request adv
// names stored without a record (see WithEarlierResults). A search that
// fails is logged and leaves the answer to be published: the request has
// run out of deliveries, and a second result is better than none.
func (n *Listener) findEarlier(ctx context.Context, adv Advisory, stored time.Time) (resultSeq uint64, found bool) {
	if n.earlier == nil {
		return 0, false
	}
	resultSeq, found, _, err := n.earlier.FindStored(ctx, adv.Stream, adv.StreamSeq, stored)
	if err != nil {
		n.logger.LogAttrs(ctx, slog.LevelWarn, "cannot look for a result stored by an earlier delivery; answering all the same",
			slog.Uint64("stream_seq", adv.StreamSeq), slog.Any("error", err))
		return 0, false
	}
	return resultSeq, found
}

// recorded is the outcome for a request whose result is stored already, at
// resultSeq in the result stream (named by its record, or found by its
// message ID; read through r): nothing is published. With hooks, the
// stored result becomes the outcome's and its hook is due: the delivery
// that stored it may have crashed while its hook ran, with no delivery left
// to run it again.
func (n *Listener) recorded(ctx context.Context, out consumer.Outcome, resultSeq uint64, r handlers.ResultReader) (consumer.Outcome, bool) {
	out.Action, out.Stored, out.Duplicate = consumer.Decide(consumer.Facts{Result: out.Result, Stored: true}), true, true
	if n.hook == nil {
		return out, false
	}
	res, err := r.Result(ctx, resultSeq)
	switch {
	case errors.Is(err, handlers.ErrResultGone):
		// Stored and since removed by the result stream's limits: done,
		// with nothing to run the hook with.
		return out, false
	case err != nil:
		// Answer again later, when the stored result can be read for its
		// hook.
		out.Action, out.Stored, out.Duplicate, out.Err = consumer.Decide(consumer.Facts{}), false, false, err
		return out, false
	}
	out.Result, out.AlertID = res, res.AlertID
	return out, true
}

// failure builds the failure result of the request adv names, from the
// request itself while the stream still stores it; stored is when the
// stream stored it (zero when it is gone).
func (n *Listener) failure(ctx context.Context, adv Advisory) (res *message.Result, rtg handlers.Routing, stored time.Time, traceparent string, err error) {
	rtg = handlers.Routing{SuccessSubject: n.successSubject, FailureSubject: n.failureSubject}
	stream, err := n.js.Stream(ctx, adv.Stream)
	if err != nil {
		return nil, rtg, time.Time{}, "", fmt.Errorf("look up stream %s: %w", adv.Stream, err)
	}
	msg, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		reason := &message.Error{
			Kind:    message.KindUnavailable,
			Message: fmt.Sprintf("delivery limit reached: %d deliveries ended without a result; the request is no longer stored", adv.Deliveries),
		}
		res = message.Failure("", reason, 0, n.now())
		res.RequestSequence, res.Delivery = adv.StreamSeq, adv.Deliveries
		return res, rtg, time.Time{}, "", nil
	}
	if err != nil {
		return nil, rtg, time.Time{}, "", fmt.Errorf("read request %d: %w", adv.StreamSeq, err)
	}
	// A body that does not decode has no alert ID; the result still names
	// the request by its sequence and carries its body.
	req, _ := message.Decode(msg.Data, msg.Header)
	rtg.CacheKey = req.AlertID
	if n.routing != nil {
		rtg = n.routing(msg.Subject, req)
	}
	reason := &message.Error{
		Kind:    message.KindUnavailable,
		Message: fmt.Sprintf("delivery limit reached: %d deliveries ended without a result", adv.Deliveries),
	}
	res = message.Failure(req.AlertID, reason, 0, n.now()).WithRequest(msg.Data)
	res.CorrelationID, res.Tenant, res.API = req.CorrelationID, rtg.Tenant, string(rtg.API)
	res.RequestSequence, res.Delivery = adv.StreamSeq, adv.Deliveries
	res.ReplayOf = message.ReplayOf(msg.Header)
	if msg.Header != nil {
		traceparent = msg.Header.Get(message.HeaderTraceparent)
	}
	return res, rtg, msg.Time, traceparent, nil
}
