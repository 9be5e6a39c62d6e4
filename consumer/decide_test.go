package consumer

import (
	"errors"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/message"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 14, 3, 0, time.UTC)
	ok := message.Success("a", nil, 1, false, now)
	invalid := message.Failure("", &message.Error{Kind: message.KindInvalidRequest}, 0, now)
	notFound := message.Failure("a", &message.Error{Kind: message.KindNotFound}, 1, now)
	unavailable := message.Failure("a", errors.New("connection reset"), 5, now)
	tests := []struct {
		name  string
		facts Facts
		want  Action
	}{
		{"success stored", Facts{Result: ok, Stored: true}, Ack},
		{"terminal failure stored", Facts{Result: notFound, Stored: true}, Ack},
		{"retry budget spent, failure stored", Facts{Result: unavailable, Stored: true}, Ack},
		{"stored earlier, result no longer readable", Facts{Stored: true}, Ack},
		{"invalid input stored", Facts{Result: invalid, Stored: true}, Terminate},
		{"success not stored", Facts{Result: ok}, Retry},
		{"invalid input not stored", Facts{Result: invalid}, Retry},
		{"interrupted lookup", Facts{Interrupted: true}, HandBack},
		{"fetched once shutdown had begun", Facts{Interrupted: true}, HandBack},
		{"interrupted last delivery, failure stored", Facts{Interrupted: true, Last: true, Result: unavailable, Stored: true}, Ack},
		{"interrupted last delivery, not stored", Facts{Interrupted: true, Last: true, Result: unavailable}, Retry},
		{"panic", Facts{Panicked: true}, Retry},
		{"panic at shutdown", Facts{Panicked: true, Interrupted: true}, Retry},
		{"no JetStream metadata", Facts{NoMetadata: true}, Terminate},
		{"nothing to answer", Facts{NothingToAnswer: true}, Ack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.facts); got != tt.want {
				t.Errorf("Decide(%+v) = %v, want %v", tt.facts, got, tt.want)
			}
		})
	}
}

func TestDefaultRetryDelay(t *testing.T) {
	prev := time.Duration(0)
	for n := uint64(1); n <= 10; n++ {
		d := DefaultRetryDelay(n)
		if d < prev || d < time.Second || d > 30*time.Second {
			t.Errorf("DefaultRetryDelay(%d) = %v after %v", n, d, prev)
		}
		prev = d
	}
	if DefaultRetryDelay(1) != time.Second || DefaultRetryDelay(10) != 30*time.Second {
		t.Errorf("DefaultRetryDelay runs from %v to %v, want 1s to 30s", DefaultRetryDelay(1), DefaultRetryDelay(10))
	}
}
