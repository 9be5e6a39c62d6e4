package consumer

import "github.com/alert-domains/alert-domains/message"

// Facts are what became of one delivery, as far as Decide goes.
type Facts struct {
	// Result is the request's result: stored, or built and not stored.
	Result *message.Result
	// Stored: the result stream holds the result (from any delivery).
	Stored bool
	// Interrupted: shutdown ended the work before there was a result.
	Interrupted bool
	// Last: the last delivery allowed, so never handed back.
	Last bool
	// Panicked: the handler panicked.
	Panicked bool
	// NoMetadata: not a JetStream message.
	NoMetadata bool
	// NothingToAnswer: the message asks for no result (a foreign advisory).
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
