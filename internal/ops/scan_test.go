package ops

import (
	"strconv"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// TestRecentCalls: a time for each attempt of each result stored since
// from, by the tenant its subject names (the plain subjects' is
// "default"), a result standing for at most maxCallsPerResult calls.
func TestRecentCalls(t *testing.T) {
	e := newTestEnv(t, nil)
	start := time.Now()
	for i, attempts := range []int{2, 0, 1, maxCallsPerResult + 5} {
		r := message.Success("alert_"+strconv.Itoa(i), nil, attempts, false, time.Now())
		if i == 2 {
			r = message.Failure("alert_2", &connector.Error{Kind: message.KindThrottled, Message: "throttled"}, attempts, time.Now())
			r.Tenant = "contoso"
		}
		e.result(t, r, e.request(t, r.Tenant, r.AlertID, nil))
	}
	// Not a result: no calls.
	if _, err := e.js.Publish(t.Context(), e.cfg.FailureSubject, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from time.Time
		want int
	}{
		{"the last hour", start.Add(-time.Hour), 2 + 0 + 1 + maxCallsPerResult},
		{"from now on", time.Now().Add(time.Minute), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, err := RecentCalls(t.Context(), e.js, e.cfg, tt.from)
			n := len(calls["default"]) + len(calls["contoso"])
			if err != nil || n != tt.want || len(calls) > 2 {
				t.Fatalf("%v calls, %v; want %d", calls, err, tt.want)
			}
			if tt.want > 0 && len(calls["contoso"]) != 1 {
				t.Errorf("%d calls of contoso, want its one", len(calls["contoso"]))
			}
			for _, starts := range calls {
				for _, at := range starts {
					if at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
						t.Errorf("a call at %v, not when its result was stored", at)
					}
				}
			}
		})
	}
}
