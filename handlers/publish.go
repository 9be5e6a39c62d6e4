package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/message"
)

// JetStream stores a message in a stream (a jetstream.JetStream).
type JetStream interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// publisher stores results under their request's message.ResultMsgID and
// tells answers of each.
type publisher struct {
	js       JetStream
	answers  *Answers
	routes   routes
	timeout  time.Duration // one wait for the stream's acknowledgement
	budget   time.Duration // all the waits of a result that cost a call
	maxBytes int           // the largest message the server stores
	now      func() time.Time
	logger   *slog.Logger
	trace    resultTrace
}

// publish stores res, the result of d routed to rt (reason: why it fails),
// and decides what happens to the request (consumer.Decide).
func (p *publisher) publish(ctx context.Context, d *consumer.Delivery, rt route, key string, res *message.Result, reason error) consumer.Outcome {
	ctx, span := p.trace.start(ctx)
	msgID := message.ResultMsgID(d.Stream, d.StreamSeq, d.Stored)
	traceparent := d.Header.Get(message.HeaderTraceparent)
	msg, err := res.Message(p.routes.resultSubject(rt, res), msgID, traceparent)
	p.trace.inject(ctx, msg)
	if err == nil && p.maxBytes > 0 {
		if size := message.MessageSize(msg); size > p.maxBytes {
			res = res.TooLarge(size, p.maxBytes, d.Data, p.now())
			reason = errors.New(res.Error.Message)
			msg, err = res.Message(p.routes.resultSubject(rt, res), msgID, traceparent)
			p.trace.inject(ctx, msg)
		}
	}
	out := consumer.Outcome{Result: res, Err: reason, AlertID: res.AlertID, Attempts: res.Attempts}
	var ack *jetstream.PubAck
	if err == nil {
		budget := time.Duration(0) // only an answer that cost a call is worth waiting for
		if res.Attempts > 0 || res.Coalesced {
			budget = p.budget
		}
		defer p.answers.Storing(storedRequest(d))()
		ack, err = p.store(ctx, msg, budget)
	}
	switch {
	case err != nil:
		out.Err = errors.Join(reason, fmt.Errorf("store result: %w", err))
	case ack.Duplicate:
		out.Stored, out.Duplicate = true, true
		if stored, err := p.answers.Believed(ctx, storedRequest(d), ack.Sequence); err == nil {
			out.Result = stored
		} else if errors.Is(err, message.ErrNotOurs) {
			p.logger.LogAttrs(ctx, slog.LevelError, "the result of this request was taken by a message the service did not write",
				slog.Uint64("stream_seq", d.StreamSeq), slog.Uint64("result_seq", ack.Sequence))
		}
	default:
		out.Stored = true
		p.answers.Stored(storedRequest(d), ack.Sequence, res, key)
	}
	out.Action = consumer.Decide(consumer.Facts{Result: out.Result, Stored: out.Stored})
	if out.Action == consumer.Retry {
		out.Delay = consumer.DefaultRetryDelay(d.NumDelivered)
	}
	p.trace.end(span, msg, out)
	return out
}

// store publishes msg, once even after shutdown began, and again with
// backoff within budget while the stream does not answer.
func (p *publisher) store(ctx context.Context, msg *nats.Msg, budget time.Duration) (*jetstream.PubAck, error) {
	start := time.Now()
	backoff := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		ack, err := p.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil || !consumer.Transient(err) || time.Since(start)+backoff > budget {
			return ack, err
		}
		if !timing.Sleep(ctx, backoff, nil) {
			return ack, err
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// storedRequest is the request message d delivers.
func storedRequest(d *consumer.Delivery) message.StoredRequest {
	return message.StoredRequest{Subject: d.Subject, Data: d.Data, Header: d.Header, Seq: d.StreamSeq, Stored: d.Stored}
}
