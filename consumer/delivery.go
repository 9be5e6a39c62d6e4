package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/message"
)

// Delivery is one delivery of a request message.
type Delivery struct {
	// Subject is the request's subject; a last token after REQUEST_SUBJECT names the tenant.
	Subject   string
	Data      []byte
	Header    nats.Header
	Stream    string
	StreamSeq uint64
	// Stored is when the stream stored the message, which tells re-created streams apart.
	Stored       time.Time
	NumDelivered uint64
	MaxDeliver   int // 0 or less: no limit
	// Exhausted: out of deliveries (from the safety net); Microsoft is not asked.
	Exhausted bool
}

// Last reports whether this is the last delivery the consumer allows.
func (d *Delivery) Last() bool { return d.MaxDeliver > 0 && d.NumDelivered >= uint64(d.MaxDeliver) }

// Action is what the consumer does with the request message.
type Action int

// The actions on a request message.
const (
	Ack       Action = iota + 1 // the result is stored
	Retry                       // no result could be stored; redeliver after Outcome.Delay
	Terminate                   // invalid input, its failure stored; never redeliver
	HandBack                    // shutting down; redeliver at once, to any replica
)

func (a Action) String() string {
	if a >= Ack && a <= HandBack {
		return [...]string{Ack: "ack", Retry: "retry", Terminate: "terminate", HandBack: "hand_back"}[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Outcome is what handling a delivery came to.
type Outcome struct {
	Action Action
	Delay  time.Duration   // with Retry
	Result *message.Result // published, or would have been; nil when handed back
	// Stored: the result stream holds it; Duplicate: it did already (Result is that one).
	Stored, Duplicate bool
	Err               error // of a failure result, a failed publish, or a hand-back
	AlertID           string
	Attempts          int
}

// Handler handles one delivery. It never panics on bad input.
type Handler func(ctx context.Context, d *Delivery) Outcome

// Middleware wraps a handler with a cross-cutting concern.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// DefaultRetryDelay waits 1s after the first failed publish, doubling up to 30s.
func DefaultRetryDelay(delivery uint64) time.Duration {
	return min(time.Second<<min(max(delivery, 1)-1, 5), 30*time.Second)
}
