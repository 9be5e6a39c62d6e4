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

func TestTailSubjects(t *testing.T) {
	e := newTestEnv(t, nil)
	ok, bad := e.cfg.SuccessSubject, e.cfg.FailureSubject
	for _, tt := range []struct {
		name string
		o    TailOptions
		want []string
	}{
		{"tenant, both", TailOptions{Tenant: "contoso"}, []string{ok, bad, ok + ".contoso", bad + ".contoso"}},
		{"tenant, failed", TailOptions{Tenant: "contoso", Failed: true}, []string{bad, bad + ".contoso"}},
		{"tenant, succeeded", TailOptions{Tenant: "contoso", Succeeded: true}, []string{ok, ok + ".contoso"}},
		{"every tenant", TailOptions{}, []string{ok, bad, ok + ".*", bad + ".*"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tail, err := OpenTail(t.Context(), e.js, e.cfg, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			defer tail.Stop()
			if !slices.Equal(tail.Subjects, tt.want) {
				t.Errorf("subjects %v, want %v", tail.Subjects, tt.want)
			}
		})
	}
	plainTenant := &Tail{tenant: "contoso", plain: map[string]bool{ok: true, bad: true}}
	every := &Tail{plain: plainTenant.plain}
	for _, tt := range []struct {
		name          string
		t             *Tail
		subject, data string
		want          bool
	}{
		{"own subject", plainTenant, ok + ".contoso", `{"status":"success","tenant":"contoso"}`, true},
		{"plain subject, its tenant", plainTenant, bad, `{"status":"failure","tenant":"contoso"}`, true},
		{"plain subject, another tenant", plainTenant, ok, `{"status":"success","tenant":"fabrikam"}`, false},
		{"plain subject, no tenant", plainTenant, bad, `{"status":"failure"}`, false},
		{"plain subject, unreadable", plainTenant, bad, `not json`, false},
		{"every tenant, unreadable", every, bad, `not json`, true},
	} {
		if got := tt.t.keeps(tt.subject, []byte(tt.data)); got != tt.want {
			t.Errorf("%s: keeps = %v, want %v", tt.name, got, tt.want)
		}
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
		name string
		o    TailOptions
		want []string
	}{
		{"every tenant", TailOptions{}, []string{"alert_0", "alert_1", "alert_2", "alert_3", "alert_plain", "alert_last"}},
		{"one tenant", TailOptions{Tenant: "contoso"}, []string{"alert_0", "alert_3", "alert_last"}},
		{"failures", TailOptions{Failed: true}, []string{"alert_plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Since = time.Now().Add(-time.Hour)
			tail, err := OpenTail(t.Context(), e.js, e.cfg, tt.o)
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
	if _, err := OpenTail(t.Context(), e.js, &nope, TailOptions{}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a stream that does not exist: %v", err)
	}
}
