package consumer

import "github.com/alert-domains/alert-domains/message"

// Facts are what became of one delivery, as far as the decision on its
// message goes.
type Facts struct {
	// Result is the request's result: stored, or built and not stored.
	Result *message.Result
	// Stored reports that the result stream holds the request's result
	// (stored by this delivery or by an earlier one).
	Stored bool
	// Interrupted reports that shutdown ended the work before the message
	// had a result (also a message that arrived once shutdown had begun).
	Interrupted bool
	// Last reports the last delivery the consumer allows: interrupted, it
	// is not handed back, its result must be stored now.
	Last bool
	// Panicked reports that the handler panicked.
	Panicked bool
	// NoMetadata reports a message without JetStream metadata: there is no
	// request to answer for and nothing to redeliver.
	NoMetadata bool
	// NothingToAnswer reports a message that asks for no result (an
	// advisory of another consumer, or one that does not parse).
	NothingToAnswer bool
}

// Decide is the one place that chooses what happens to a delivered
// message, for the request handler, the safety net and the consumer
// itself:
//   - interrupted by shutdown before it had a result, and not the last
//     delivery: hand back, to be redelivered at once to any replica;
//   - the handler panicked: redeliver later;
//   - no JetStream metadata: terminate, it can never be answered;
//   - nothing to answer: acknowledge;
//   - no result stored: redeliver later (never a bare Nak, which would
//     redeliver at once and burn the delivery budget); on the last
//     delivery the server's max-deliveries advisory then produces the
//     failure result;
//   - invalid input with its failure result stored: terminate, it can
//     never succeed;
//   - any other stored result: acknowledge.
func Decide(f Facts) Action {
	switch {
	case f.Panicked:
		return Retry
	case f.Interrupted && !f.Last:
		return HandBack
	case f.NoMetadata:
		return Terminate
	case f.NothingToAnswer:
		return Ack
	case !f.Stored:
		return Retry
	case f.Result.Kind() == message.KindInvalidRequest:
		return Terminate
	default:
		return Ack
	}
}
