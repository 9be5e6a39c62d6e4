package ops

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/alert-domains/alert-domains/message"
)

const (
	originalTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	originalTracestate  = "siem=7"
)

// TestReplayTracesEachCopy proves that with tracing on each copy starts a
// trace of its own, whose producer span links to the original's trace and
// whose context the copy carries instead of the original's; and that a
// later run still knows the copy for replay's own (it skips it as pending).
func TestReplayTracesEachCopy(t *testing.T) {
	e := newTestEnv(t, nil)
	h := nats.Header{message.HeaderTraceparent: {originalTraceparent}, message.HeaderTracestate: {originalTracestate}}
	seq := e.request(t, "contoso", "alert_a", h)
	e.failure(t, "contoso", "alert_a", message.KindUnavailable, seq)
	before := e.lastSeq(t, e.cfg.RequestStream)

	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	if _, sum := e.replay(t, ReplayOptions{Failed: true, TracerProvider: tp, Propagator: prop}); sum.Republished != 1 {
		t.Fatalf("summary %+v, want one copy", sum)
	}
	spans := sr.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want one", len(spans))
	}
	s := spans[0]
	original := trace.SpanContextFromContext(prop.Extract(t.Context(), message.HeaderCarrier(h)))
	if s.Name() != "publish "+e.cfg.RequestSubject || s.SpanKind() != trace.SpanKindProducer || s.Parent().IsValid() {
		t.Errorf("span %q, kind %v, parent %v: want a producer span starting a trace", s.Name(), s.SpanKind(), s.Parent())
	}
	if s.SpanContext().TraceID() == original.TraceID() {
		t.Error("the copy's span is in the original's trace")
	}
	if links := s.Links(); len(links) != 1 || links[0].SpanContext.TraceID() != original.TraceID() || links[0].SpanContext.SpanID() != original.SpanID() {
		t.Errorf("links %+v, want one to the original %v", links, original)
	}
	copies := e.requestsAfter(t, before)
	if len(copies) != 1 {
		t.Fatalf("%d copies stored", len(copies))
	}
	sc := s.SpanContext()
	if got, want := copies[0].Header.Get(message.HeaderTraceparent), "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01"; got != want {
		t.Errorf("copy traceparent %q, want the span's %q", got, want)
	}
	if got := copies[0].Header.Get(message.HeaderTracestate); got != "" {
		t.Errorf("copy tracestate %q, want the original's dropped", got)
	}

	if _, sum := e.replay(t, ReplayOptions{Failed: true, TracerProvider: tp, Propagator: prop}); sum.Republished != 0 || sum.Skipped[SkipReplayPending] != 1 {
		t.Errorf("second run: %+v, want the traced copy known as pending", sum)
	}
}

// TestReplayUntracedKeepsTraceContext proves that with tracing off a copy
// carries its original's trace context, as before tracing.
func TestReplayUntracedKeepsTraceContext(t *testing.T) {
	e := newTestEnv(t, nil)
	seq := e.request(t, "", "alert_a", nats.Header{message.HeaderTraceparent: {originalTraceparent}, message.HeaderTracestate: {originalTracestate}})
	e.failure(t, "", "alert_a", message.KindUnavailable, seq)
	before := e.lastSeq(t, e.cfg.RequestStream)
	e.replay(t, ReplayOptions{Failed: true})
	copies := e.requestsAfter(t, before)
	if len(copies) != 1 || copies[0].Header.Get(message.HeaderTraceparent) != originalTraceparent ||
		copies[0].Header.Get(message.HeaderTracestate) != originalTracestate {
		t.Fatalf("copies %v, want one with the original's trace context", copies)
	}
}

// TestReplaySpanAttributesBounded: a copy's subject, chosen by whoever
// published the original, is cut at message.MaxAttrBytes in its span.
func TestReplaySpanAttributesBounded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := newReplayTrace(ReplayOptions{TracerProvider: tp, Propagator: propagation.TraceContext{}}, "defender.alerts.domains.requests")
	raw := &jetstream.RawStreamMsg{Subject: "defender.alerts.domains.requests." + strings.Repeat("x", 3000), Header: nats.Header{}}
	tr.start(context.Background(), raw, replayMessage(raw, 1, "replay-1"), 1).End()
	for _, a := range rec.Ended()[0].Attributes() {
		if n := len(a.Value.Emit()); n > message.MaxAttrBytes {
			t.Errorf("attribute %s is %d bytes, want at most %d", a.Key, n, message.MaxAttrBytes)
		}
	}
}
