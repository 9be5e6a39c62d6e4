// Package safetynet answers the requests that ran out of deliveries without
// a result: it reads the max-deliveries advisories the request stream
// captures and hands each request to the request handler, marked exhausted.
package safetynet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/consumer"
)

// Listener reads the max-deliveries advisories of the request consumer and
// hands their requests on.
type Listener struct {
	cfg Config
}

// Config is what a Listener reads and where it hands requests.
type Config struct {
	JS              jetstream.JetStream
	RequestStream   string
	Consumer        string
	Handler         consumer.Handler // the request handler chain
	Logger          *slog.Logger
	Answered        func(duplicate bool) // optional: told of each advisory answered
	Bind            consumer.Binder      // binds to the advisory consumer
	AckWait         time.Duration
	ShutdownTimeout time.Duration
}

// New returns the Listener cfg describes.
func New(cfg Config) (*Listener, error) {
	if cfg.JS == nil || cfg.Handler == nil || cfg.Bind == nil || cfg.RequestStream == "" || cfg.Consumer == "" {
		return nil, errors.New("safetynet: JetStream, the handler, the binder, the request stream and its consumer are required")
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	return &Listener{cfg: cfg}, nil
}

// Run answers advisories until ctx ends or it cannot go on.
func (n *Listener) Run(ctx context.Context) error {
	c, err := consumer.New(n.cfg.Bind, n.Handle, consumer.Config{Concurrency: 4, AckWait: n.cfg.AckWait,
		ShutdownTimeout: n.cfg.ShutdownTimeout, Logger: n.cfg.Logger})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// Handle hands an advisory's request to the request handler and settles the
// advisory as the outcome says.
func (n *Listener) Handle(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
	adv, err := ParseAdvisory(d.Data)
	if err != nil { // nothing in it can ever be answered
		n.cfg.Logger.LogAttrs(ctx, slog.LevelError, "unreadable max-deliveries advisory dropped",
			slog.Uint64("advisory_seq", d.StreamSeq), slog.Any("error", err))
		return consumer.Outcome{Action: consumer.Decide(consumer.Facts{NothingToAnswer: true}), Err: err}
	}
	if adv.Stream != n.cfg.RequestStream || adv.Consumer != n.cfg.Consumer {
		n.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "advisory of another consumer ignored",
			slog.String("stream", adv.Stream), slog.String("consumer", adv.Consumer), slog.Uint64("stream_seq", adv.StreamSeq))
		return consumer.Outcome{Action: consumer.Decide(consumer.Facts{NothingToAnswer: true})}
	}
	req, err := n.request(ctx, adv)
	if err != nil {
		return consumer.Outcome{Action: consumer.Decide(consumer.Facts{}), Delay: consumer.DefaultRetryDelay(d.NumDelivered), Err: err}
	}
	out := n.cfg.Handler(ctx, req)
	if out.Stored && n.cfg.Answered != nil {
		n.cfg.Answered(out.Duplicate)
	}
	return out
}

// request is the delivery of the request adv names, without its body when
// the stream no longer stores it.
func (n *Listener) request(ctx context.Context, adv Advisory) (*consumer.Delivery, error) {
	d := &consumer.Delivery{Stream: adv.Stream, StreamSeq: adv.StreamSeq, NumDelivered: adv.Deliveries,
		MaxDeliver: int(adv.Deliveries), Exhausted: true}
	s, err := n.cfg.JS.Stream(ctx, adv.Stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", adv.Stream, err)
	}
	msg, err := s.GetMsg(ctx, adv.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("read request %d: %w", adv.StreamSeq, err)
	}
	d.Subject, d.Data, d.Header, d.Stored = msg.Subject, msg.Data, msg.Header, msg.Time
	return d, nil
}
