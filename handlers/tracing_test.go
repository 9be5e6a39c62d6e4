package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
	"github.com/alert-domains/alert-domains/tracing"
)

// A trace a SIEM started: the parent of every request's process span here.
const (
	siemTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	siemSpanID      = "00f067aa0ba902b7"
	siemTraceparent = "00-" + siemTraceID + "-" + siemSpanID + "-01"
	siemTracestate  = "siem=7"
)

// tracedEnv is env whose tenants ("default" and "alpha", both on Graph)
// are asked through real connector clients of an emulator, with a handler
// chain of the tracing and logging middleware; a recorder keeps the
// spans of both, and logs holds the chain's JSON lines.
type tracedEnv struct {
	*env
	emu   *emulator.Server
	spans *tracetest.SpanRecorder
	chain consumer.Handler
	logs  *syncBuffer
}

func newTracedEnv(t *testing.T, on bool, propagators ...propagation.TextMapPropagator) *tracedEnv {
	t.Helper()
	e := newEnv(t)
	known := map[string][]string{}
	for _, id := range []string{"da637000000000000001_1", "da637000000000000002_1", "da637000000000000003_1",
		"da637000000000000004_1", "637000000000000005_1", "da637000000000000020_1", "da637000000000000040_1"} {
		known[id] = []string{"www.example.com"}
	}
	emu := emulator.NewServer(emulator.Config{Alerts: known})
	t.Cleanup(emu.Close)
	sr := tracetest.NewSpanRecorder()
	var tp trace.TracerProvider = noop.NewTracerProvider()
	var prop propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator()
	if on {
		sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
		tp, prop = sdk, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		if len(propagators) > 0 {
			prop = propagation.NewCompositeTextMapPropagator(propagators...)
		}
	}
	set, err := tenants.New([]config.Tenant{
		{Name: config.DefaultTenant, API: connector.Graph},
		{Name: "alpha", API: connector.Graph, Credential: connector.CredentialConfig{TenantID: alphaEntra}},
	}, func(*config.Tenant) (tenants.Lookup, error) {
		cred, err := connector.NewCredential(emu.Credential())
		if err != nil {
			return nil, err
		}
		return connector.New(connector.Graph, emu.URL, cred, emulator.ScopeOf(connector.Graph),
			connector.WithHTTPClient(emu.Client()), connector.WithTimeout(5*time.Second),
			connector.WithBackoff(5*time.Millisecond, 20*time.Millisecond, 300*time.Millisecond),
			connector.WithQuota(connector.NewLimiter([]connector.Limit{{Count: 10000, Window: time.Minute}})),
			connector.WithTracerProvider(tp))
	})
	if err != nil {
		t.Fatal(err)
	}
	e.tenants = tenants.NewRouter(set)
	logs := &syncBuffer{}
	logger := slog.New(tracing.LogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	r := e.replica(t, withCacheTTL(time.Minute), withConfig(func(c *Config) {
		c.TracerProvider, c.Propagator, c.Logger = tp, prop, logger
	}))
	chain := consumer.Chain(r.svc.Handle, Tracing(tp, prop, subjects, durable), Logging(logger))
	return &tracedEnv{env: e, emu: emu, spans: sr, chain: chain, logs: logs}
}

// handle stores a request with the SIEM's trace context and hands its
// first delivery to the chain; it returns the delivery, the spans ended
// meanwhile and the result stored.
func (te *tracedEnv) handle(t *testing.T, subject, body string) (*consumer.Delivery, []sdktrace.ReadOnlySpan, *nats.Msg) {
	t.Helper()
	before := len(te.spans.Ended())
	d := te.request(t, subject, body, nats.Header{message.HeaderTraceparent: {siemTraceparent},
		message.HeaderTracestate: {siemTracestate}, message.HeaderMsgID: {"siem-" + fmt.Sprint(time.Now().UnixNano())}})
	return d, te.deliver(t, d, before), te.result(t, d)
}

func (te *tracedEnv) deliver(t *testing.T, d *consumer.Delivery, before int) []sdktrace.ReadOnlySpan {
	t.Helper()
	if out := te.chain(t.Context(), d); !out.Stored {
		t.Fatalf("outcome %+v: no result stored", out)
	}
	return te.spans.Ended()[before:]
}

// result is the stored result of d.
func (te *tracedEnv) result(t *testing.T, d *consumer.Delivery) *nats.Msg {
	t.Helper()
	for _, m := range te.stored(t) {
		if m.Header.Get(message.HeaderMsgID) == idOf(d) {
			return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		}
	}
	t.Fatalf("no result stored for request %d", d.StreamSeq)
	return nil
}

// TestTracingSpansOfADelivery proves the spans of one delivery through
// the chain, for a success and each failure kind: the process span under
// the request's traceparent with the messaging attributes and what came
// of it, the Defender calls and the publish under it, and the result
// carrying the publish span's context and the request's tracestate.
func TestTracingSpansOfADelivery(t *testing.T) {
	te := newTracedEnv(t, true)
	errorBody := `{"error":{"code":"X","message":"scripted"}}`
	cases := []struct {
		name, subject, body string
		script              []emulator.Answer
		kind                message.Kind // "" for a success
		calls               []int        // the status of each HTTP span
	}{
		{name: "success", subject: reqSubj, body: "da637000000000000001_1", calls: []int{200}},
		{name: "tenant subject", subject: reqSubj + ".alpha", body: "da637000000000000002_1", calls: []int{200}},
		{name: "503 then success", subject: reqSubj, body: "da637000000000000003_1", script: []emulator.Answer{{Status: 503, Body: errorBody}}, calls: []int{503, 200}},
		{name: "429 then success", subject: reqSubj, body: "da637000000000000004_1", script: []emulator.Answer{{Status: 429, Body: errorBody}}, calls: []int{429, 200}},
		{name: "legacy ID asked again", subject: reqSubj, body: "637000000000000005_1", calls: []int{404, 200}},
		{name: "not_found", subject: reqSubj, body: "da637000000000000006_1", script: []emulator.Answer{{Status: 404, Body: errorBody}}, kind: message.KindNotFound, calls: []int{404}},
		{name: "forbidden", subject: reqSubj, body: "da637000000000000007_1", script: []emulator.Answer{{Status: 403, Body: errorBody}}, kind: message.KindForbidden, calls: []int{403}},
		{name: "bad_request", subject: reqSubj, body: "da637000000000000008_1", script: []emulator.Answer{{Status: 400, Body: errorBody}}, kind: message.KindBadRequest, calls: []int{400}},
		{name: "unauthorized", subject: reqSubj, body: "da637000000000000009_1", script: []emulator.Answer{{Status: 401, Body: errorBody}, {Status: 401, Body: errorBody}}, kind: message.KindUnauthorized, calls: []int{401, 401}},
		{name: "bad_response", subject: reqSubj, body: "da637000000000000010_1", script: []emulator.Answer{{Status: 200, Body: "<html/>"}}, kind: message.KindBadResponse, calls: []int{200}},
		{name: "throttled", subject: reqSubj, body: "da637000000000000011_1", script: repeat(emulator.Answer{Status: 429, Body: errorBody}, 200), kind: message.KindThrottled},
		{name: "unavailable", subject: reqSubj, body: "da637000000000000012_1", script: repeat(emulator.Answer{Status: 503, Body: errorBody}, 200), kind: message.KindUnavailable},
		{name: "invalid_request", subject: reqSubj, body: "../machines", kind: message.KindInvalidRequest},
		{name: "unknown_tenant", subject: reqSubj, body: `{"alertId":"da637000000000000013_1","tenant":"initech"}`, kind: message.KindUnknownTenant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.body
			if tc.kind != message.KindInvalidRequest && tc.kind != message.KindUnknownTenant {
				te.emu.Script(id, tc.script...)
			}
			d, spans, res := te.handle(t, tc.subject, tc.body)
			process := checkProcess(t, spans, d, tc.kind)
			calls := named(spans, "GET /v1.0/security/alerts_v2/{id}")
			if tc.calls != nil && len(calls) != len(tc.calls) {
				t.Fatalf("%d HTTP spans, want %d: %v", len(calls), len(tc.calls), spanNames(spans))
			}
			for i, c := range calls {
				if i < len(tc.calls) && attrsOf(c)["http.response.status_code"].AsInt64() != int64(tc.calls[i]) {
					t.Errorf("HTTP span %d: status %v, want %d", i, attrsOf(c)["http.response.status_code"].Emit(), tc.calls[i])
				}
				if got := attrsOf(c)["http.request.resend_count"].AsInt64(); tc.name != "legacy ID asked again" && got != int64(i) {
					t.Errorf("HTTP span %d: resend count %d, want %d", i, got, i)
				}
			}
			for _, s := range spans {
				if s != process && s.Parent().SpanID() != process.SpanContext().SpanID() {
					t.Errorf("span %q is not a child of the process span", s.Name())
				}
			}
			checkPublish(t, spans, process, res, tc.kind)
			checkLogLine(t, te.logs, process)
		})
	}
}

// TestTracingResultTraceparentWithB3: with another propagator
// (OTEL_PROPAGATORS=b3), the result's traceparent is still the publish
// span's, not the request's, beside the propagator's own headers.
func TestTracingResultTraceparentWithB3(t *testing.T) {
	b3, err := autoprop.TextMapPropagator("b3")
	if err != nil {
		t.Fatal(err)
	}
	te := newTracedEnv(t, true, b3)
	_, spans, res := te.handle(t, reqSubj, "da637000000000000020_1")
	ps := named(spans, "publish "+successSubj)
	if len(ps) != 1 {
		t.Fatalf("spans %v, want one publish", spanNames(spans))
	}
	sc := ps[0].SpanContext()
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if got := res.Header.Get(message.HeaderTraceparent); got != want || res.Header.Get("b3") == "" {
		t.Errorf("result traceparent %q, b3 %q; want %s (the publish span) and a b3 header", got, res.Header.Get("b3"), want)
	}
}

// TestTracingCacheHit proves that an answer from the cache makes no
// Defender span and marks the process span cached.
func TestTracingCacheHit(t *testing.T) {
	te := newTracedEnv(t, true)
	const id = "da637000000000000020_1"
	te.handle(t, reqSubj, id)
	d, spans, res := te.handle(t, reqSubj, id)
	process := checkProcess(t, spans, d, "")
	if got := attrsOf(process)["alert_domains.cached"]; !got.AsBool() {
		t.Errorf("alert_domains.cached = %v, want true", got.Emit())
	}
	if names := spanNames(spans); len(names) != 2 {
		t.Errorf("spans %v, want only the process and publish spans", names)
	}
	checkPublish(t, spans, process, res, "")
}

// TestTracingOutOfDeliveries proves that the failure the safety net
// publishes for a request out of deliveries carries its trace too.
func TestTracingOutOfDeliveries(t *testing.T) {
	te := newTracedEnv(t, true)
	before := len(te.spans.Ended())
	d := te.request(t, reqSubj, "da637000000000000030_1", nats.Header{message.HeaderTraceparent: {siemTraceparent}})
	d.Exhausted, d.NumDelivered, d.MaxDeliver = true, 5, 5
	spans := te.deliver(t, d, before)
	process := checkProcess(t, spans, d, message.KindUnavailable)
	checkPublish(t, spans, process, te.result(t, d), message.KindUnavailable)
}

// TestTracingOffPassesTraceparentThrough proves that with tracing off
// (no-op provider and propagator) nothing is recorded, the result carries
// the request's traceparent exactly as before, and log lines carry no IDs.
func TestTracingOffPassesTraceparentThrough(t *testing.T) {
	te := newTracedEnv(t, false)
	const id = "da637000000000000040_1"
	_, spans, res := te.handle(t, reqSubj, id)
	if len(spans) != 0 {
		t.Errorf("%d spans recorded with tracing off", len(spans))
	}
	if got := res.Header.Get(message.HeaderTraceparent); got != siemTraceparent {
		t.Errorf("result traceparent %q, want the request's %q", got, siemTraceparent)
	}
	if got := res.Header.Values(message.HeaderTracestate); got != nil {
		t.Errorf("result tracestate %q, want none (as before tracing)", got)
	}
	if strings.Contains(te.logs.String(), "trace_id") {
		t.Errorf("log lines carry trace IDs with tracing off:\n%s", te.logs.String())
	}
}

// checkProcess checks the one process span of d's delivery and returns it.
func checkProcess(t *testing.T, spans []sdktrace.ReadOnlySpan, d *consumer.Delivery, kind message.Kind) sdktrace.ReadOnlySpan {
	t.Helper()
	ps := named(spans, "process "+reqSubj)
	if len(ps) != 1 {
		t.Fatalf("spans %v, want one %q", spanNames(spans), "process "+reqSubj)
	}
	p := ps[0]
	if p.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("process span kind %v, want consumer", p.SpanKind())
	}
	if parent := p.Parent(); d.Header.Get(message.HeaderTraceparent) != "" &&
		(!parent.IsRemote() || parent.TraceID().String() != siemTraceID || parent.SpanID().String() != siemSpanID) {
		t.Errorf("process span parent %v, want the request's traceparent", parent)
	}
	a := attrsOf(p)
	want := map[attribute.Key]string{
		"messaging.system": "nats", "messaging.destination.name": d.Subject, "messaging.consumer.group.name": durable,
		"messaging.operation.type": "process", "messaging.operation.name": "process",
		"messaging.message.id": d.Header.Get(message.HeaderMsgID), "error.type": string(kind),
	}
	want["alert_domains.result.status"] = map[bool]string{true: "failure", false: "success"}[kind != ""]
	if strings.HasPrefix(d.Subject, reqSubj+".") {
		want["messaging.destination.template"], want["alert_domains.tenant"] = reqSubj+".{tenant}", "alpha"
	}
	if kind != message.KindInvalidRequest && kind != message.KindUnknownTenant {
		want["alert_domains.alert_id"] = string(d.Data)
	}
	for k, v := range want {
		if got := a[k].Emit(); got != v {
			t.Errorf("process span %s = %q, want %q", k, got, v)
		}
	}
	if wantCode := map[bool]codes.Code{true: codes.Error, false: codes.Unset}[kind != ""]; p.Status().Code != wantCode {
		t.Errorf("process span status %v, want %v", p.Status(), wantCode)
	}
	return p
}

// checkPublish checks the publish span under process and that the result
// res carries its context and the request's tracestate.
func checkPublish(t *testing.T, spans []sdktrace.ReadOnlySpan, process sdktrace.ReadOnlySpan, res *nats.Msg, kind message.Kind) {
	t.Helper()
	subject := map[bool]string{true: failureSubj, false: successSubj}[kind != ""]
	ps := named(spans, "publish "+subject)
	if len(ps) != 1 {
		t.Fatalf("spans %v, want one %q", spanNames(spans), "publish "+subject)
	}
	p := ps[0]
	a := attrsOf(p)
	if p.SpanKind() != trace.SpanKindProducer || p.Parent().SpanID() != process.SpanContext().SpanID() ||
		a["messaging.operation.type"].AsString() != "send" || a["messaging.operation.name"].AsString() != "publish" ||
		a["messaging.destination.name"].AsString() != res.Subject || a["messaging.message.id"].AsString() != res.Header.Get(message.HeaderMsgID) {
		t.Errorf("publish span: kind %v, parent %v, attributes %v", p.SpanKind(), p.Parent().SpanID(), p.Attributes())
	}
	sc := p.SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; res.Header.Get(message.HeaderTraceparent) != want {
		t.Errorf("result traceparent %q, want the publish span's %q", res.Header.Get(message.HeaderTraceparent), want)
	}
	if ts := res.Header.Get(message.HeaderTracestate); process.Parent().IsRemote() && ts != sc.TraceState().String() {
		t.Errorf("result tracestate %q, want %q", ts, sc.TraceState().String())
	}
}

// checkLogLine checks that the last line logged carries the IDs of the
// process span.
func checkLogLine(t *testing.T, logs *syncBuffer, process sdktrace.ReadOnlySpan) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var line struct {
		TraceID string `json:"trace_id"`
		SpanID  string `json:"span_id"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &line); err != nil {
		t.Fatal(err)
	}
	if sc := process.SpanContext(); line.TraceID != sc.TraceID().String() || line.SpanID != sc.SpanID().String() {
		t.Errorf("log line %s: want trace_id %s and span_id %s", lines[len(lines)-1], sc.TraceID(), sc.SpanID())
	}
}

func named(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	return names
}

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func repeat(a emulator.Answer, n int) []emulator.Answer {
	out := make([]emulator.Answer, n)
	for i := range out {
		out[i] = a
	}
	return out
}

// syncBuffer is a buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// BenchmarkTracingMiddleware is the cost of the process span around a
// handler that does nothing: without the middleware, with it and tracing
// off (no-op provider and propagator), and with it on (every span
// sampled, handed to a batch span processor whose exporter drops it).
func BenchmarkTracingMiddleware(b *testing.B) {
	d := &consumer.Delivery{Subject: reqSubj + ".alpha", Data: []byte("da637000000000000001_1"), NumDelivered: 1,
		Header: nats.Header{message.HeaderTraceparent: {siemTraceparent}, message.HeaderMsgID: {"siem-1"}}}
	res := message.Success("da637000000000000001_1", []string{"www.example.com"}, 1, false, testNow)
	res.Tenant = "alpha"
	next := func(context.Context, *consumer.Delivery) consumer.Outcome {
		return consumer.Outcome{Action: consumer.Ack, Result: res, Stored: true, AlertID: res.AlertID, Attempts: 1}
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	for _, bc := range []struct {
		name string
		h    consumer.Handler
	}{
		{"none", next},
		{"off", Tracing(noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator(), subjects, durable)(next)},
		{"on", Tracing(sdk, w3c, subjects, durable)(next)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				bc.h(ctx, d)
			}
		})
	}
}

// discard is a span exporter that drops every span.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
