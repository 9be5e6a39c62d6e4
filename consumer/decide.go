package consumer

import "github.com/alert-domains/alert-domains/message"

// Facts are what became of one delivery, as far as Decide goes.
type Facts struct {
	Result          *message.Result // stored, or built and not stored
	Stored          bool            // the result stream holds the result (from any delivery)
	Interrupted     bool            // shutdown ended the work before there was a result
	Last            bool            // the last delivery allowed, so never handed back
	Panicked        bool
	NoMetadata      bool // not a JetStream message
	NothingToAnswer bool // the message asks for no result (a foreign advisory)
}

// Decide is the one place that chooses what happens to a delivered message,
// for the request handler, the safety net and the consumer itself.
func Decide(f Facts) Action {
	switch {
	case f.Panicked:
		return Retry
	case f.Interrupted && !f.Last:
		return HandBack // redelivered at once, to any replica
	case f.NoMetadata:
		return Terminate // can never be answered
	case f.NothingToAnswer:
		return Ack
	case !f.Stored:
		return Retry // later, never a bare Nak; after the last, the advisory answers
	case f.Result.Kind() == message.KindInvalidRequest:
		return Terminate // can never succeed
	default:
		return Ack
	}
}
