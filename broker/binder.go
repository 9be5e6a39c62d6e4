package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/handlers"
)

// Binder binds to a durable consumer. With provisioning on, a missing one is
// created where processing stopped: after the acknowledgement floor seen,
// and for the request consumer at the first request without a stored result.
type Binder struct {
	js        jetstream.JetStream
	stream    string
	cfg       jetstream.ConsumerConfig
	provision bool
	answers   *handlers.Answers // nil: not the request consumer
	logger    *slog.Logger

	mu      sync.Mutex
	floor   uint64    // the highest acknowledgement floor observed
	floorOf time.Time // when the consumer that had it was created
}

// NewBinder returns the binder of cfg on stream; answers is nil but for the request consumer.
func NewBinder(js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, provision bool, answers *handlers.Answers, logger *slog.Logger) *Binder {
	return &Binder{js: js, stream: stream, cfg: cfg, provision: provision, answers: answers, logger: logger}
}

// Bind returns the consumer, re-created when it is gone and provisioning is on.
func (b *Binder) Bind(ctx context.Context) (jetstream.Consumer, error) {
	c, err := b.js.Consumer(ctx, b.stream, b.cfg.Durable)
	switch {
	case err == nil:
		b.Observe(c.CachedInfo())
		return c, nil
	case !errors.Is(err, jetstream.ErrConsumerNotFound) || !b.provision:
		return nil, err
	}
	return b.create(ctx)
}

// create creates the consumer where processing stopped.
func (b *Binder) create(ctx context.Context) (jetstream.Consumer, error) {
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", b.stream, err)
	}
	st, created := s.CachedInfo().State, s.CachedInfo().Created
	b.mu.Lock()
	floor := b.floor
	if b.floorOf.Before(created) {
		floor = 0 // observed on a stream deleted since, or never
	}
	b.mu.Unlock()
	cfg := b.cfg
	lower := max(st.FirstSeq, floor+1)
	began := time.Now()
	switch {
	case st.Msgs == 0 && st.LastSeq == 0:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy // a new stream
	case lower > st.LastSeq:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, st.LastSeq+1
	case b.answers != nil:
		start, err := b.answers.FirstUnanswered(ctx, lower, st.LastSeq)
		if err != nil {
			return nil, fmt.Errorf("create consumer %s on %s: %w", cfg.Durable, b.stream, err)
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	default:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, lower
	}
	c, err := b.js.CreateConsumer(ctx, b.stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return b.js.Consumer(ctx, b.stream, cfg.Durable) // another replica's, from the same facts
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", cfg.Durable, b.stream, err)
	}
	attrs := []any{slog.String("stream", b.stream), slog.String("consumer", cfg.Durable)}
	if cfg.DeliverPolicy == jetstream.DeliverAllPolicy {
		b.logger.Info("created consumer", attrs...)
	} else {
		b.logger.Warn("consumer was missing and has been created where processing stopped",
			append(attrs, slog.Uint64("start_seq", cfg.OptStartSeq), slog.Duration("took", time.Since(began)))...)
	}
	return c, nil
}

// Observe records the consumer's acknowledgement floor and tells answers.
func (b *Binder) Observe(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	b.mu.Lock()
	raised := info.AckFloor.Stream > b.floor
	if raised {
		b.floor, b.floorOf = info.AckFloor.Stream, info.Created
	}
	b.mu.Unlock()
	if raised && b.answers != nil {
		b.answers.Done(info.AckFloor.Stream)
	}
}
