package consumer_test

import (
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// Decide is the one decision on a delivered request message: acknowledge it
// only once its result is stored, terminate bad input, hand back work that
// shutdown interrupted, and otherwise let it come again later.
func ExampleDecide() {
	now := time.Date(2026, 11, 27, 9, 14, 3, 0, time.UTC)
	success := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, now)
	invalid := message.Failure("", &message.Error{Kind: message.KindInvalidRequest, Message: "alert id is empty"}, 0, now)
	for _, c := range []struct {
		what  string
		facts consumer.Facts
	}{
		{"result stored", consumer.Facts{Result: success, Stored: true}},
		{"result not stored (the result stream did not answer)", consumer.Facts{Result: success}},
		{"invalid request, its failure stored", consumer.Facts{Result: invalid, Stored: true}},
		{"interrupted by shutdown", consumer.Facts{Interrupted: true}},
		{"interrupted on the last delivery", consumer.Facts{Interrupted: true, Last: true}},
		{"the handler panicked", consumer.Facts{Panicked: true}},
	} {
		fmt.Printf("%s: %s\n", c.what, consumer.Decide(c.facts))
	}
	// Output:
	// result stored: ack
	// result not stored (the result stream did not answer): retry
	// invalid request, its failure stored: terminate
	// interrupted by shutdown: hand_back
	// interrupted on the last delivery: retry
	// the handler panicked: retry
}
