package handlers

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// tracerName is the instrumentation scope of the spans of a request's
// handling and of its result's publish.
const tracerName = "github.com/alert-domains/alert-domains/handlers"

// maxAttrBytes bounds an attribute value that a publisher of requests
// chose (a subject, a message ID): the server allows far longer ones.
const maxAttrBytes = 256

// Tracing starts the consumer span of each delivery, "process
// <REQUEST_SUBJECT>", as a child of the trace context the request carries
// when it is valid (else as the root of a new trace), and ends it with what
// the delivery came to: the alert, the tenant, the result's status and, on
// a failure, its kind as the error type. Logging inside it logs the span's
// IDs; the result's publish span is its child.
func Tracing(tp trace.TracerProvider, prop propagation.TextMapPropagator, subjects message.Subjects, consumerName string) consumer.Middleware {
	tracer := tp.Tracer(tracerName, trace.WithSchemaURL(semconv.SchemaURL))
	name := "process " + subjects.Request
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
			ctx = prop.Extract(ctx, message.HeaderCarrier(d.Header))
			ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer))
			defer span.End()
			if span.IsRecording() {
				span.SetAttributes(deliveryAttrs(d, subjects.Request, consumerName)...)
			}
			out := next(ctx, d)
			if span.IsRecording() {
				endProcess(span, out)
			}
			return out
		}
	}
}

// deliveryAttrs are the attributes of the process span of d, which came on
// request (or its per-tenant form).
func deliveryAttrs(d *consumer.Delivery, request, consumerName string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"),
		semconv.MessagingConsumerGroupName(consumerName),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		attribute.Int64("alert_domains.delivery", int64(d.NumDelivered)),
	}
	if d.Subject != "" {
		attrs = append(attrs, semconv.MessagingDestinationName(capAttr(d.Subject)))
	}
	if strings.HasPrefix(d.Subject, request+".") {
		attrs = append(attrs, semconv.MessagingDestinationTemplate(request+".{tenant}"))
	}
	if id := d.Header.Get(message.HeaderMsgID); id != "" {
		attrs = append(attrs, semconv.MessagingMessageID(capAttr(id)))
	}
	return attrs
}

// endProcess records on the process span what the delivery came to.
func endProcess(span trace.Span, out consumer.Outcome) {
	span.SetAttributes(attribute.String("alert_domains.action", out.Action.String()))
	if out.AlertID != "" {
		span.SetAttributes(attribute.String("alert_domains.alert_id", out.AlertID))
	}
	if res := out.Result; res != nil {
		span.SetAttributes(attribute.String("alert_domains.result.status", res.Status))
		if res.Tenant != "" {
			span.SetAttributes(attribute.String("alert_domains.tenant", res.Tenant))
		}
		if res.Cached != nil && *res.Cached {
			span.SetAttributes(attribute.Bool("alert_domains.cached", true))
		}
		if res.Coalesced {
			span.SetAttributes(attribute.Bool("alert_domains.coalesced", true))
		}
		if res.Error != nil {
			span.SetAttributes(semconv.ErrorTypeKey.String(string(res.Error.Kind)))
			span.SetStatus(codes.Error, string(res.Error.Kind))
		}
	}
	if out.Action == consumer.Retry {
		span.SetStatus(codes.Error, "no result stored: the request will be redelivered")
	}
}

// resultTrace traces the publish of results: a producer span whose context
// the result carries, so that its subscribers continue the trace.
type resultTrace struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	subjects message.Subjects
}

func newResultTrace(tp trace.TracerProvider, prop propagation.TextMapPropagator, subjects message.Subjects) resultTrace {
	return resultTrace{tracer: tp.Tracer(tracerName, trace.WithSchemaURL(semconv.SchemaURL)), prop: prop, subjects: subjects}
}

// start starts the span of a result's publish; end names it.
func (t resultTrace) start(ctx context.Context) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, "publish", trace.WithSpanKind(trace.SpanKindProducer))
}

// inject writes the context of ctx's span into msg's headers in place of
// the request's traceparent. With tracing off there is none, and the
// request's traceparent stays as Result.Message copied it.
func (t resultTrace) inject(ctx context.Context, msg *nats.Msg) {
	if msg != nil && trace.SpanContextFromContext(ctx).IsValid() {
		t.prop.Inject(ctx, message.HeaderCarrier(msg.Header))
	}
}

// end names the span for the subject msg went to, "publish <SUCCESS_SUBJECT>"
// or "publish <FAILURE_SUBJECT>" also for a tenant's form, and ends it.
func (t resultTrace) end(span trace.Span, msg *nats.Msg, out consumer.Outcome) {
	if span.IsRecording() && msg != nil {
		base := t.subjects.Failure
		if msg.Subject == t.subjects.Success || strings.HasPrefix(msg.Subject, t.subjects.Success+".") {
			base = t.subjects.Success
		}
		span.SetName("publish " + base)
		span.SetAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingDestinationName(msg.Subject),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingMessageID(msg.Header.Get(message.HeaderMsgID)),
		)
		if strings.HasPrefix(msg.Subject, base+".") {
			span.SetAttributes(semconv.MessagingDestinationTemplate(base + ".{tenant}"))
		}
		if !out.Stored {
			span.SetStatus(codes.Error, "result not stored")
		}
	}
	span.End()
}

// capAttr cuts s at maxAttrBytes, on a rune boundary.
func capAttr(s string) string {
	if len(s) <= maxAttrBytes {
		return s
	}
	cut := maxAttrBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
