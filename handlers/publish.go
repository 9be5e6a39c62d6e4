package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// ResultPublisher stores results in the result stream: the one path from
// a built result to a stored one, for the request handler and the safety
// net alike.
type ResultPublisher struct {
	Pub Publisher
	// Answers, when not nil, gets the record of each stored result of a
	// Publication with Record set, and gives the stored result of a
	// duplicate.
	Answers Answers
	// Timeout bounds each wait for the stream's acknowledgement.
	Timeout time.Duration
	// Budget bounds the time spent storing an answer that cost a Defender
	// call while the stream does not answer (see WithPublishBudget).
	Budget time.Duration
	// MaxBytes is the largest result message the server stores; a larger
	// result is replaced by a bad_response failure. 0: no limit.
	MaxBytes int
	// Now stamps the failure that replaces a result too large to store.
	Now func() time.Time
}

// Publication is one result to store, and the request message it answers.
type Publication struct {
	// Stream, Seq and Stored name the request message; they make the
	// result's message ID and the key of its record.
	Stream string
	Seq    uint64
	Stored time.Time
	// Body is the request body, carried by the failure that replaces a
	// result too large to store.
	Body           []byte
	Result         *message.Result
	SuccessSubject string
	FailureSubject string
	Traceparent    string
	// Record writes the request's record (see Answers) once the result is
	// stored.
	Record bool
}

// Publish publishes pub's result under the message ID every delivery of
// the request uses (message.ResultMsgID) and decides what happens to the
// request message (consumer.Decide); reason is why the result is a
// failure, if it is one. The outcome's Result is the result stored: pub's,
// its too-large replacement, or the one an earlier delivery stored.
func (p *ResultPublisher) Publish(ctx context.Context, pub Publication, reason error) consumer.Outcome {
	res := pub.Result
	msgID := message.ResultMsgID(pub.Stream, pub.Seq, pub.Stored)
	msg, err := res.Message(res.Subject(pub.SuccessSubject, pub.FailureSubject), msgID, pub.Traceparent)
	if err == nil && p.MaxBytes > 0 {
		if size := message.MessageSize(msg); size > p.MaxBytes {
			res = res.TooLarge(size, p.MaxBytes, pub.Body, p.Now())
			reason = errors.New(res.Error.Message)
			msg, err = res.Message(pub.FailureSubject, msgID, pub.Traceparent)
		}
	}
	out := consumer.Outcome{Result: res, Err: reason, AlertID: res.AlertID, Attempts: res.Attempts}
	var perr error
	if err != nil {
		perr = fmt.Errorf("encode result: %w", err)
	} else {
		// Only an answer that cost a Defender call is worth waiting for the
		// stream: a cached answer or a failure without a call costs nothing
		// to redeliver.
		budget := time.Duration(0)
		if res.Attempts > 0 || res.Coalesced {
			budget = p.Budget
		}
		ack, err := p.publish(ctx, msg, budget)
		if err != nil {
			perr = fmt.Errorf("publish result: %w", err)
		} else {
			out.Stored, out.Duplicate = true, ack.Duplicate
			p.record(ctx, pub, ack, &out)
		}
	}
	if perr != nil {
		out.Err = errors.Join(reason, perr)
	}
	out.Action = consumer.Decide(consumer.Facts{Result: res, Stored: perr == nil})
	return out
}

// publish stores msg in the result stream. The first attempt gets its
// chance even when shutdown has begun (the lookup is done and its answer is
// worth storing); while the stream does not answer, attempts go on, with
// backoff, within budget and until shutdown. Every attempt
// carries the same message ID, so an attempt that was stored although its
// acknowledgement was lost is not stored twice.
func (p *ResultPublisher) publish(ctx context.Context, msg *nats.Msg, budget time.Duration) (*jetstream.PubAck, error) {
	start := time.Now()
	wait := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.Timeout)
		ack, err := p.Pub.PublishMsg(pctx, msg)
		cancel()
		if err == nil || !unanswered(err) || time.Since(start)+wait > budget {
			return ack, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ack, err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// unanswered reports a publish that the result stream did not answer, or
// answered "try again": what a stream between leaders, or a connection
// between servers, looks like.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// record writes the record of the result just stored, so that a later
// delivery of the request, even after the duplicate window, finds it. A
// duplicate (the result was stored by an earlier delivery, which may have
// crashed before writing the record) is recorded too, and the stored
// result becomes the outcome's.
func (p *ResultPublisher) record(ctx context.Context, pub Publication, ack *jetstream.PubAck, out *consumer.Outcome) {
	if p.Answers == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.Timeout)
	defer cancel()
	if pub.Record {
		if err := p.Answers.Record(rctx, message.AnswerKey(pub.Seq, pub.Stored), ack.Sequence); err != nil {
			out.RecordErr = err
		}
	}
	if ack.Duplicate {
		stored, err := p.Answers.Result(rctx, ack.Sequence)
		if err == nil {
			out.Result = stored
		} else if !errors.Is(err, ErrResultGone) {
			out.RecordErr = errors.Join(out.RecordErr, err)
		}
	}
}
