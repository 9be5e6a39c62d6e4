package ops

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/alert-domains/alert-domains/message"
)

// replayTrace gives each copy a producer span, a new trace linked to the
// original's, whose context the copy carries.
type replayTrace struct {
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	request string // REQUEST_SUBJECT
}

func newReplayTrace(opts ReplayOptions, request string) replayTrace {
	tp, prop := opts.TracerProvider, opts.Propagator
	if tp == nil || prop == nil {
		tp, prop = noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator()
	}
	return replayTrace{tracer: tp.Tracer("github.com/alert-domains/alert-domains/internal/ops", trace.WithSchemaURL(semconv.SchemaURL)),
		prop: prop, request: request}
}

// start starts the span of msg, raw's copy, and puts its context in msg.
func (t replayTrace) start(ctx context.Context, raw *jetstream.RawStreamMsg, msg *nats.Msg, root uint64) trace.Span {
	original := trace.LinkFromContext(t.prop.Extract(ctx, message.HeaderCarrier(raw.Header)))
	ctx, span := t.tracer.Start(ctx, "publish "+t.request, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithNewRoot(), trace.WithLinks(original))
	if !span.SpanContext().IsValid() {
		return span
	}
	for _, f := range t.prop.Fields() {
		delete(msg.Header, f)
	}
	t.prop.Inject(ctx, message.HeaderCarrier(msg.Header))
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingDestinationName(message.Cut(msg.Subject, message.MaxAttrBytes)),
			semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("publish"),
			semconv.MessagingMessageID(msg.Header.Get(message.HeaderMsgID)), attribute.Int64("alert_domains.replay_of", int64(root)))
		if strings.HasPrefix(msg.Subject, t.request+".") {
			span.SetAttributes(semconv.MessagingDestinationTemplate(t.request + ".{tenant}"))
		}
	}
	return span
}
