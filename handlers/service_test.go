package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/wait"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestHandleOutcomes: every kind of answer a delivery can come to, each
// stored once, with the fields and headers of the contract, on the subject
// of the tenant the request names.
func TestHandleOutcomes(t *testing.T) {
	notFound := &connector.Error{Kind: message.KindNotFound, HTTPStatus: 404, Code: "ResourceNotFound", Message: "alert not found"}
	many := make([]string, 200)
	for i := range many {
		many[i] = fmt.Sprintf("host-%03d.example.com", i)
	}
	tests := []struct {
		name        string
		subject     string
		body        string
		header      nats.Header
		noDefault   bool // the tenants have no "default"
		answer      func(ctx context.Context, tenant, id string) (connector.Result, error)
		maxBytes    int
		wantAction  consumer.Action
		wantSubject string
		wantTenant  string
		wantKind    message.Kind
		wantCalls   []string
		wantJSON    []string // parts of the stored result
	}{
		{
			name: "success", subject: reqSubj, body: `{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`,
			header: nats.Header{message.HeaderTraceparent: {traceparent}},
			answer: func(context.Context, string, string) (connector.Result, error) {
				return connector.Result{Domains: []string{"www.example.com", "cdn.example.net"}, Attempts: 1}, nil
			},
			wantAction: consumer.Ack, wantSubject: successSubj, wantTenant: config.DefaultTenant,
			wantCalls: []string{"default/da637472900382838869_1364969609"},
			wantJSON: []string{`"status":"success"`, `"alertId":"da637472900382838869_1364969609"`, `"domains":["www.example.com","cdn.example.net"]`,
				`"api":"mde"`, `"attempts":1`, `"cached":false`, `"correlationId":"siem-42"`, `"tenant":"default"`, `"completedAt":"2026-11-27T09:14:03.512Z"`},
		},
		{
			name: "no domains is an empty list", subject: reqSubj, body: "636688558380765161_2136280442",
			answer: func(context.Context, string, string) (connector.Result, error) {
				return connector.Result{Attempts: 1}, nil
			},
			wantAction: consumer.Ack, wantSubject: successSubj, wantTenant: config.DefaultTenant,
			wantCalls: []string{"default/636688558380765161_2136280442"}, wantJSON: []string{`"domains":[]`},
		},
		{
			name: "terminal failure", subject: reqSubj, body: "da637551227677560813_-961444813",
			answer: func(context.Context, string, string) (connector.Result, error) {
				return connector.Result{Attempts: 1}, notFound
			},
			wantAction: consumer.Ack, wantSubject: failureSubj, wantTenant: config.DefaultTenant, wantKind: message.KindNotFound,
			wantCalls: []string{"default/da637551227677560813_-961444813"},
			wantJSON: []string{`"status":"failure"`, `"httpStatus":404`, `"code":"ResourceNotFound"`, `"attempts":1`,
				`"request":"da637551227677560813_-961444813"`, `"alertId":"da637551227677560813_-961444813"`},
		},
		{
			name: "invalid request is never asked", subject: reqSubj, body: "../machines",
			header:     nats.Header{message.HeaderTraceparent: {traceparent}},
			wantAction: consumer.Terminate, wantSubject: failureSubj, wantKind: message.KindInvalidRequest,
			wantJSON: []string{`"attempts":0`, `"request":"../machines"`},
		},
		{
			name: "a tenant by its subject", subject: reqSubj + ".alpha", body: "a1",
			wantAction: consumer.Ack, wantSubject: successSubj + ".alpha", wantTenant: "alpha", wantCalls: []string{"alpha/a1"},
			wantJSON: []string{`"api":"graph"`, `"domains":["alpha.example"]`},
		},
		{
			name: "a tenant by the tenant field", subject: reqSubj, body: `{"alertId":"a1","tenant":"bravo"}`,
			wantAction: consumer.Ack, wantSubject: successSubj + ".bravo", wantTenant: "bravo", wantCalls: []string{"bravo/a1"},
			wantJSON: []string{`"api":"mde"`},
		},
		{
			name: "a tenant by the alert's Entra tenant", subject: reqSubj, body: `{"id":"a1","tenantId":"` + bravoEntra + `"}`,
			wantAction: consumer.Ack, wantSubject: successSubj + ".bravo", wantTenant: "bravo", wantCalls: []string{"bravo/a1"},
		},
		{
			name: "subject and field agree", subject: reqSubj + ".alpha", body: `{"alertId":"a1","tenant":"alpha"}`,
			wantAction: consumer.Ack, wantSubject: successSubj + ".alpha", wantTenant: "alpha", wantCalls: []string{"alpha/a1"},
		},
		{
			name: "conflicting tenants: subject and field", subject: reqSubj + ".alpha", body: `{"alertId":"a1","tenant":"bravo"}`,
			wantAction: consumer.Terminate, wantSubject: failureSubj + ".alpha", wantTenant: "alpha", wantKind: message.KindInvalidRequest,
			wantJSON: []string{`"attempts":0`},
		},
		{
			name: "conflicting tenants: field and Entra tenant", subject: reqSubj, body: `{"id":"a1","tenant":"alpha","tenantId":"` + bravoEntra + `"}`,
			wantAction: consumer.Terminate, wantSubject: failureSubj, wantKind: message.KindInvalidRequest,
		},
		{
			name: "tenant field not a string", subject: reqSubj + ".alpha", body: `{"alertId":"a1","tenant":7}`,
			wantAction: consumer.Terminate, wantSubject: failureSubj + ".alpha", wantTenant: "alpha", wantKind: message.KindInvalidRequest,
		},
		{
			name: "unknown tenant by subject", subject: reqSubj + ".initech", body: "a1",
			wantAction: consumer.Ack, wantSubject: failureSubj, wantKind: message.KindUnknownTenant, wantJSON: []string{`"attempts":0`},
		},
		{
			name: "unknown tenant by field", subject: reqSubj, body: `{"alertId":"a1","tenant":"initech"}`,
			wantAction: consumer.Ack, wantSubject: failureSubj, wantKind: message.KindUnknownTenant,
		},
		{
			name: "names none and there is no default", subject: reqSubj, body: "a1", noDefault: true,
			wantAction: consumer.Ack, wantSubject: failureSubj, wantKind: message.KindUnknownTenant,
		},
		{
			name: "result too large is a bad_response", subject: reqSubj, body: "a1", maxBytes: 2048,
			answer: func(context.Context, string, string) (connector.Result, error) {
				return connector.Result{Domains: many, Attempts: 1}, nil
			},
			wantAction: consumer.Ack, wantSubject: failureSubj, wantTenant: config.DefaultTenant, wantKind: message.KindBadResponse,
			wantCalls: []string{"default/a1"},
			wantJSON:  []string{`"attempts":1`, `"request":"a1"`, `"api":"mde"`, `"alertId":"a1"`, "answer too large"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.noDefault {
				set, err := tenants.New([]config.Tenant{{Name: "alpha", API: connector.Graph}}, e.calls.build)
				if err != nil {
					t.Fatal(err)
				}
				e.tenants.Swap(set)
			}
			e.calls.set(tt.answer)
			r := e.replica(t, withConfig(func(c *Config) { c.MaxResultBytes = tt.maxBytes }))
			d := e.request(t, tt.subject, tt.body, tt.header)
			out := r.svc.Handle(t.Context(), d)
			if out.Action != tt.wantAction || !out.Stored || out.Duplicate {
				t.Fatalf("outcome %v stored=%v duplicate=%v err=%v, want %v stored", out.Action, out.Stored, out.Duplicate, out.Err, tt.wantAction)
			}
			if got := e.calls.taken(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls %v, want %v", got, tt.wantCalls)
			}
			msgs := e.stored(t)
			if len(msgs) != 1 {
				t.Fatalf("%d results stored, want 1", len(msgs))
			}
			m := msgs[0]
			res := decode(t, m)
			if m.Subject != tt.wantSubject || res.Tenant != tt.wantTenant || res.Kind() != tt.wantKind || res.RequestSequence != d.StreamSeq {
				t.Errorf("result on %s: %s; want %s, tenant %q, kind %q, requestSequence %d", m.Subject, m.Data, tt.wantSubject, tt.wantTenant, tt.wantKind, d.StreamSeq)
			}
			for _, w := range tt.wantJSON {
				if !strings.Contains(string(m.Data), w) {
					t.Errorf("result %s lacks %s", m.Data, w)
				}
			}
			h := m.Header
			if h.Get(message.HeaderMsgID) != idOf(d) || h.Get(message.HeaderResultStatus) != res.Status ||
				h.Get(message.HeaderTenant) != tt.wantTenant || h.Get(message.HeaderAlertID) != res.AlertID ||
				h.Get(message.HeaderContentType) != "application/json" {
				t.Errorf("headers %v of result %s; want Nats-Msg-Id %s", h, m.Data, idOf(d))
			}
			if got := h.Get(message.HeaderTraceparent); got != tt.header.Get(message.HeaderTraceparent) {
				t.Errorf("traceparent %q, want %q", got, tt.header.Get(message.HeaderTraceparent))
			}
			if res.Status == message.StatusSuccess && (res.Error != nil || res.Request != nil) {
				t.Errorf("a success with failure fields: %s", m.Data)
			}
			if res.Status == message.StatusFailure && (res.Domains != nil || res.Cached != nil || res.Request == nil || *res.Request != tt.body) {
				t.Errorf("a failure with success fields, or without its request: %s", m.Data)
			}
			if out.Result == nil || out.Result.Status != res.Status || out.Result.Kind() != res.Kind() {
				t.Errorf("outcome's result %+v is not the stored one", out.Result)
			}
		})
	}
}

// TestHandlePublishFailureRetriesLater: a result that cannot be stored
// within the budget is no result: the request is redelivered after a
// delay (never at once), and a later delivery stores it.
func TestHandlePublishFailureRetriesLater(t *testing.T) {
	e := newEnv(t)
	js := &failingJS{JetStream: e.js}
	js.fail.Store(1000)
	r := e.replica(t, withJS(js), withConfig(func(c *Config) { c.PublishBudget = time.Nanosecond }))
	d := e.request(t, reqSubj, "a1", nil)
	out := r.svc.Handle(t.Context(), d)
	if out.Action != consumer.Retry || out.Delay < time.Second || out.Stored || !errors.Is(out.Err, nats.ErrNoResponders) {
		t.Fatalf("failed publish: %v delay %v stored=%v err=%v, want a retry after a delay", out.Action, out.Delay, out.Stored, out.Err)
	}
	js.fail.Store(0)
	if out := r.svc.Handle(t.Context(), again(d)); out.Action != consumer.Ack || !out.Stored || out.Duplicate {
		t.Fatalf("redelivery: %v stored=%v (%v)", out.Action, out.Stored, out.Err)
	}
	if n := len(e.stored(t)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}
}

// TestHandlePublishTriesAgainWhileStreamUnanswered: a result stream that
// does not answer for a moment (its leader lost) costs no second call:
// the answer in hand is published again. Shutdown ends the attempts.
func TestHandlePublishTriesAgainWhileStreamUnanswered(t *testing.T) {
	e := newEnv(t)
	js := &failingJS{JetStream: e.js}
	js.fail.Store(3)
	r := e.replica(t, withJS(js))
	d := e.request(t, reqSubj, "a1", nil)
	if out := r.svc.Handle(t.Context(), d); out.Action != consumer.Ack || !out.Stored || out.Err != nil {
		t.Fatalf("after 3 unanswered publishes: %v stored=%v err=%v, want the result stored", out.Action, out.Stored, out.Err)
	}
	if got := e.calls.taken(); len(got) != 1 {
		t.Errorf("calls %v, want one", got)
	}
	if n := len(e.stored(t)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}

	js.fail.Store(1000)
	js.attempted = make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	outs := make(chan consumer.Outcome, 1)
	d = e.request(t, reqSubj, "a2", nil)
	go func() { outs <- r.svc.Handle(ctx, d) }()
	<-js.attempted
	<-js.attempted
	cancel()
	go func() {
		for range js.attempted { // a last attempt may be under way
		}
	}()
	if out := <-outs; out.Action != consumer.Retry || out.Stored {
		t.Fatalf("unanswered publishes at shutdown: %v stored=%v, want a retry", out.Action, out.Stored)
	}
	close(js.attempted)
}

// blocking makes every call wait until release is closed (or its request
// is interrupted), and tells entered of each call.
func blocking(e *env) (entered chan string, release chan struct{}) {
	entered, release = make(chan string, 16), make(chan struct{})
	e.calls.set(func(ctx context.Context, tenant, id string) (connector.Result, error) {
		entered <- id
		select {
		case <-release:
			return connector.Result{Domains: []string{tenant + ".example"}, Attempts: 1}, nil
		case <-ctx.Done():
			return connector.Result{Attempts: 1}, &connector.Error{Kind: message.KindUnavailable, Message: "interrupted", Err: ctx.Err()}
		}
	})
	return entered, release
}

// waiting is a context whose waits (see package wait) are told on the
// channel: a request waiting for another's call says so.
func waiting(ctx context.Context) (context.Context, chan struct{}) {
	began := make(chan struct{}, 4)
	return wait.With(ctx, func(bool) func() {
		began <- struct{}{}
		return func() {}
	}), began
}

// TestHandleShutdownHandsBack: shutdown while a request waits (for its own
// call, or for another request's) hands it back without a result; on the
// last delivery it ends in a failure all the same.
func TestHandleShutdownHandsBack(t *testing.T) {
	e := newEnv(t)
	r := e.replica(t)
	entered, release := blocking(e)

	// Its own call.
	ctx, cancel := context.WithCancel(t.Context())
	d := e.request(t, reqSubj, "a1", nil)
	outs := make(chan consumer.Outcome, 2)
	go func() { outs <- r.svc.Handle(ctx, d) }()
	<-entered
	cancel()
	if out := <-outs; out.Action != consumer.HandBack || out.Stored || out.Result != nil {
		t.Fatalf("interrupted call: %v stored=%v, want hand back", out.Action, out.Stored)
	}

	// Another request's call for the same alert.
	first := e.request(t, reqSubj, "a2", nil)
	go func() { outs <- r.svc.Handle(t.Context(), first) }()
	<-entered
	ctx, cancel = context.WithCancel(t.Context())
	ctx, began := waiting(ctx)
	second := e.request(t, reqSubj, "a2", nil)
	go func() { outs <- r.svc.Handle(ctx, second) }()
	<-began
	cancel()
	if out := <-outs; out.Action != consumer.HandBack || out.Stored {
		t.Fatalf("interrupted wait for another call: %v stored=%v, want hand back", out.Action, out.Stored)
	}

	// The last delivery of a waiting request is not handed back.
	ctx, cancel = context.WithCancel(t.Context())
	ctx, began = waiting(ctx)
	last := e.request(t, reqSubj, "a2", nil)
	last.NumDelivered = 10
	go func() { outs <- r.svc.Handle(ctx, last) }()
	<-began
	cancel()
	out := <-outs
	if out.Action != consumer.Ack || !out.Stored || out.Result.Kind() != message.KindUnavailable {
		t.Fatalf("last delivery: %v stored=%v kind %q, want an unavailable failure stored", out.Action, out.Stored, out.Result.Kind())
	}
	close(release)
	if out := <-outs; out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess {
		t.Fatalf("the first request: %v %v", out.Action, out.Err)
	}
	if got := e.calls.taken(); len(got) != 2 {
		t.Errorf("calls %v, want one per alert", got)
	}
	var kinds []string
	for _, m := range e.stored(t) {
		kinds = append(kinds, m.Subject)
	}
	if want := []string{failureSubj, successSubj}; !slices.Equal(kinds, want) {
		t.Errorf("results on %v, want %v (nothing for the requests handed back)", kinds, want)
	}
}

// TestConcurrentRequestsForOneAlertShareOneCall: requests for an alert
// whose call is in flight wait for its answer: one call, one result each,
// the shared ones with attempts 0.
func TestConcurrentRequestsForOneAlertShareOneCall(t *testing.T) {
	e := newEnv(t)
	r := e.replica(t)
	entered, release := blocking(e)
	const n = 5
	outs := make(chan consumer.Outcome, n+1)
	first := e.request(t, reqSubj, "same", nil)
	go func() { outs <- r.svc.Handle(t.Context(), first) }()
	<-entered
	for range n - 1 {
		ctx, began := waiting(t.Context())
		d := e.request(t, reqSubj, "same", nil)
		go func() { outs <- r.svc.Handle(ctx, d) }()
		<-began
	}
	// Another tenant's request for the same alert has a call of its own.
	other := e.request(t, reqSubj+".bravo", "same", nil)
	go func() { outs <- r.svc.Handle(t.Context(), other) }()
	<-entered
	close(release)
	shared := 0
	for range n + 1 {
		out := <-outs
		if out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess {
			t.Fatalf("outcome %v %v", out.Action, out.Err)
		}
		if out.Result.Coalesced {
			shared++
			if out.Result.Attempts != 0 || !slices.Equal(out.Result.Domains, []string{"default.example"}) {
				t.Errorf("shared answer: attempts %d domains %v", out.Result.Attempts, out.Result.Domains)
			}
		}
	}
	if got := e.calls.taken(); shared != n-1 || len(got) != 2 {
		t.Errorf("%d shared answers and calls %v, want %d and one call per tenant", shared, got, n-1)
	}
	if got := len(e.stored(t)); got != n+1 {
		t.Errorf("%d results stored, want one per request", got)
	}
}

// TestPanickingCallLetsWaitersAskAgain: a call that panics gives the
// requests waiting for it no answer; one of them asks again.
func TestPanickingCallLetsWaitersAskAgain(t *testing.T) {
	e := newEnv(t)
	r := e.replica(t)
	entered, release := make(chan struct{}), make(chan struct{})
	e.calls.set(func(ctx context.Context, tenant, id string) (connector.Result, error) {
		entered <- struct{}{}
		<-release
		panic("lookup bug")
	})
	panicked := make(chan any, 1)
	first := e.request(t, reqSubj, "a1", nil)
	go func() {
		defer func() { panicked <- recover() }()
		r.svc.Handle(t.Context(), first)
	}()
	<-entered
	ctx, began := waiting(t.Context())
	d := e.request(t, reqSubj, "a1", nil)
	outs := make(chan consumer.Outcome, 1)
	go func() { outs <- r.svc.Handle(ctx, d) }()
	<-began
	e.calls.set(nil) // the next call answers
	close(release)
	if p := <-panicked; p == nil {
		t.Fatal("the first request's call did not panic")
	}
	out := <-outs
	if out.Action != consumer.Ack || out.Result.Status != message.StatusSuccess || out.Result.Coalesced || out.Result.Attempts != 1 {
		t.Fatalf("the waiting request: %v %+v (%v), want its own call's success", out.Action, out.Result, out.Err)
	}
	if got := e.calls.taken(); len(got) != 2 {
		t.Errorf("calls %v, want the panicking one and the one asked again", got)
	}
}
