package ops

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/message"
)

func TestTailFilter(t *testing.T) {
	f := TailFilter{Tenant: "contoso", Success: "ok", Failure: "bad"}
	all := TailFilter{Success: "ok", Failure: "bad"}
	subjects := []struct {
		name              string
		f                 TailFilter
		failed, succeeded bool
		want              []string
	}{
		{"tenant, both", f, false, false, []string{"ok", "bad", "ok.contoso", "bad.contoso"}},
		{"tenant, failed", f, true, false, []string{"bad", "bad.contoso"}},
		{"tenant, succeeded", f, false, true, []string{"ok", "ok.contoso"}},
		{"every tenant", all, false, false, []string{"ok", "bad", "ok.*", "bad.*"}},
	}
	for _, tt := range subjects {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Subjects(tt.failed, tt.succeeded); !slices.Equal(got, tt.want) {
				t.Errorf("subjects %v, want %v", got, tt.want)
			}
		})
	}
	keeps := []struct {
		name    string
		f       TailFilter
		subject string
		data    string
		want    bool
	}{
		{"own subject", f, "ok.contoso", `{"status":"success","tenant":"contoso"}`, true},
		{"plain subject, its tenant", f, "bad", `{"status":"failure","tenant":"contoso"}`, true},
		{"plain subject, another tenant", f, "ok", `{"status":"success","tenant":"fabrikam"}`, false},
		{"plain subject, no tenant", f, "bad", `{"status":"failure"}`, false},
		{"plain subject, unreadable", f, "bad", `not json`, false},
		{"every tenant, unreadable", all, "bad", `not json`, true},
	}
	for _, tt := range keeps {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Keeps(tt.subject, []byte(tt.data)); got != tt.want {
				t.Errorf("keeps(%q, %s) = %v, want %v", tt.subject, tt.data, got, tt.want)
			}
		})
	}
}

// TestTail: a Tail reads the results its subjects select, in order, skips
// those on the plain subjects that the filter does not keep, and those the
// service did not write.
func TestTail(t *testing.T) {
	e := newTestEnv(t, nil)
	for i, tenant := range []string{"contoso", "fabrikam", "", "contoso"} {
		id := "alert_" + strconv.Itoa(i)
		r := message.Success(id, nil, 1, false, time.Now())
		r.Tenant = tenant
		e.result(t, r, e.request(t, tenant, id, nil))
	}
	// On the plain subject, naming contoso, under a message ID the service
	// never writes: not the service's, never shown.
	forged := message.Success("alert_forged", []string{"evil.example"}, 1, false, time.Now())
	forged.Tenant = "contoso"
	msg, err := forged.Message(e.cfg.SuccessSubject, "plain-alert_forged", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	e.failure(t, "", "alert_plain", message.KindNotFound, e.request(t, "", "alert_plain", nil))
	// Once this one is read, everything before it was.
	last := message.Success("alert_last", nil, 1, false, time.Now())
	last.Tenant = "contoso"
	e.result(t, last, e.request(t, "contoso", "alert_last", nil))

	tests := []struct {
		name   string
		filter TailFilter
		failed bool
		want   []string
	}{
		{"every tenant", TailFilter{Success: e.cfg.SuccessSubject, Failure: e.cfg.FailureSubject}, false, []string{"alert_0", "alert_1", "alert_2", "alert_3", "alert_plain", "alert_last"}},
		{"one tenant", TailFilter{Tenant: "contoso", Success: e.cfg.SuccessSubject, Failure: e.cfg.FailureSubject}, false, []string{"alert_0", "alert_3", "alert_last"}},
		{"failures", TailFilter{Success: e.cfg.SuccessSubject, Failure: e.cfg.FailureSubject}, true, []string{"alert_plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			occ := jetstream.OrderedConsumerConfig{FilterSubjects: tt.filter.Subjects(tt.failed, false)}
			tail, err := OpenTail(t.Context(), e.js, e.cfg, occ, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			defer tail.Stop()
			var got []string
			for len(got) < len(tt.want) {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				_, r, _, err := tail.Next(ctx)
				cancel()
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, r.AlertID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("followed %v, want %v", got, tt.want)
			}
		})
	}

	nope := *e.cfg
	nope.ResultStream = "NOPE"
	if _, err := OpenTail(t.Context(), e.js, &nope, jetstream.OrderedConsumerConfig{}, TailFilter{}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a stream that does not exist: %v", err)
	}
}
