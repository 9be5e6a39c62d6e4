// Package handlers turns one delivery of a request message into exactly one
// stored result: route, stored answer or cache, call, publish.
package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// Config is what a Service needs.
type Config struct {
	JS             JetStream
	Answers        *Answers
	Tenants        Tenants
	Subjects       message.Subjects
	PublishTimeout time.Duration // each wait for the stream's acknowledgement (default 5s)
	PublishBudget  time.Duration // all waits to store an answer that cost a call (default DefaultPublishBudget)
	MaxResultBytes int           // larger results become bad_response failures (default message.DefaultMaxResultBytes)
	Logger         *slog.Logger
	Now            func() time.Time
	TracerProvider trace.TracerProvider // default: no tracing; results carry the request's traceparent
	Propagator     propagation.TextMapPropagator
}

// DefaultPublishBudget covers a stream leader election in a three-node cluster.
const DefaultPublishBudget = 20 * time.Second

// Service is the request handler: it routes, calls, and stores the result
// with its publisher, whose routes, answers and clock it shares.
type Service struct {
	publisher
	calls calls
}

// New returns the request handler cfg describes.
func New(cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Answers == nil || cfg.Tenants == nil {
		return nil, errors.New("handlers: JetStream, the stored results and the tenants are required")
	}
	if cfg.Subjects.Request == "" || cfg.Subjects.Success == "" || cfg.Subjects.Failure == "" {
		return nil, errors.New("handlers: the subjects are required")
	}
	cfg.PublishTimeout = cmp.Or(max(cfg.PublishTimeout, 0), 5*time.Second)
	cfg.PublishBudget = cmp.Or(max(cfg.PublishBudget, 0), DefaultPublishBudget)
	cfg.MaxResultBytes = cmp.Or(cfg.MaxResultBytes, message.DefaultMaxResultBytes)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TracerProvider == nil || cfg.Propagator == nil {
		cfg.TracerProvider, cfg.Propagator = noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator()
	}
	return &Service{
		publisher: publisher{js: cfg.JS, answers: cfg.Answers, routes: routes{tenants: cfg.Tenants, subjects: cfg.Subjects},
			timeout: cfg.PublishTimeout, budget: cfg.PublishBudget, maxBytes: cfg.MaxResultBytes, now: cfg.Now, logger: cfg.Logger,
			trace: newResultTrace(cfg.TracerProvider, cfg.Propagator, cfg.Subjects)},
		calls: calls{tenants: cfg.Tenants, inFlight: map[string]*flight{}},
	}, nil
}

// Handle is the consumer.Handler of the service: the result of one
// delivery, from the answer stored already, the cache, or a call.
func (s *Service) Handle(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
	req, rt, reason := s.routes.request(d)
	if out, answered := s.answered(ctx, d); answered {
		return out
	}
	key := CacheKey(s.routes.subjects.Plain, rt.tenant, rt.api, req.AlertID)
	var res *message.Result
	if reason == nil {
		if domains, ok := s.answers.Cached(ctx, key); ok {
			res = message.Success(req.AlertID, domains, 0, true, s.now())
		}
	}
	switch {
	case res != nil:
	case d.Exhausted:
		msg := fmt.Sprintf("delivery limit reached: %d deliveries ended without a result", d.NumDelivered)
		if d.Data == nil {
			msg += "; the request is no longer stored"
		}
		reason = &message.Error{Kind: message.KindUnavailable, Message: msg}
		res = message.Failure(req.AlertID, reason, 0, s.now())
	case reason != nil:
		res = message.Failure(req.AlertID, reason, 0, s.now())
	default:
		lr, shared, err := s.calls.domains(ctx, rt, key, req.AlertID)
		if err != nil && ctx.Err() != nil && consumer.Decide(consumer.Facts{Interrupted: true, Last: d.Last()}) == consumer.HandBack {
			return consumer.Outcome{Action: consumer.HandBack, Err: err, AlertID: req.AlertID, Attempts: lr.Attempts}
		}
		// A call may outlast half the duplicate window: ask again.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.budget)
		out, answered := s.answered(actx, d)
		cancel()
		if answered {
			return out
		}
		reason = err
		if err != nil {
			res = message.Failure(req.AlertID, err, lr.Attempts, s.now())
		} else {
			res = message.Success(req.AlertID, lr.Domains, lr.Attempts, false, s.now())
			res.GraphAlertID = lr.GraphAlertID
		}
		res.Coalesced = shared
	}
	if res.Status == message.StatusFailure && d.Data != nil {
		res.WithRequest(d.Data)
	}
	res.Tenant, res.API, res.CorrelationID = rt.tenant, string(rt.api), req.CorrelationID
	res.RequestSequence, res.Delivery, res.ReplayOf = d.StreamSeq, d.NumDelivered, message.ReplayOf(d.Header)
	return s.publish(ctx, d, rt, key, res, reason)
}

// answered is the outcome of a delivery whose request has its result
// stored already; one whose answer cannot be known now is redelivered later.
func (s *Service) answered(ctx context.Context, d *consumer.Delivery) (consumer.Outcome, bool) {
	req := storedRequest(d)
	seq, found, err := s.answers.Find(ctx, req)
	if err == nil && found {
		var res *message.Result
		res, err = s.answers.Believed(ctx, req, seq)
		switch {
		case errors.Is(err, ErrResultGone): // stored, then removed by the stream's limits
			return consumer.Outcome{Action: consumer.Ack, Stored: true, Duplicate: true}, true
		case errors.Is(err, message.ErrNotOurs):
			return consumer.Outcome{}, false
		case err == nil:
			return consumer.Outcome{Action: consumer.Decide(consumer.Facts{Result: res, Stored: true}), Result: res, Stored: true, Duplicate: true, AlertID: res.AlertID}, true
		}
	}
	if err != nil {
		return consumer.Outcome{Action: consumer.Retry, Delay: consumer.DefaultRetryDelay(d.NumDelivered),
			Err: fmt.Errorf("whether the request has its result cannot be known now: %w", err)}, true
	}
	return consumer.Outcome{}, false
}
