package handlers

import (
	"context"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

const tracerName = "github.com/alert-domains/alert-domains/handlers"

// Tracing starts the span "process <REQUEST_SUBJECT>" of each delivery, a
// child of the request's trace context, and ends it with what it came to.
func Tracing(tp trace.TracerProvider, prop propagation.TextMapPropagator, subjects message.Subjects, consumerName string) consumer.Middleware {
	tracer := tp.Tracer(tracerName, trace.WithSchemaURL(semconv.SchemaURL))
	name := "process " + subjects.Request
	consumerKind := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
			ctx = prop.Extract(ctx, message.HeaderCarrier(d.Header))
			ctx, span := tracer.Start(ctx, name, consumerKind...)
			defer span.End()
			out := next(ctx, d)
			if span.IsRecording() {
				endProcess(span, d, subjects.Request, consumerName, out)
			}
			return out
		}
	}
}

// endProcess records on the process span the delivery and what it came to.
func endProcess(span trace.Span, d *consumer.Delivery, request, consumerName string, out consumer.Outcome) {
	attrs := append(make([]attribute.KeyValue, 0, 16),
		semconv.MessagingSystemKey.String("nats"),
		semconv.MessagingConsumerGroupName(consumerName),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		attribute.Int64("alert_domains.delivery", int64(d.NumDelivered)),
		attribute.String("alert_domains.action", out.Action.String()),
	)
	if d.Subject != "" {
		attrs = append(attrs, semconv.MessagingDestinationName(message.Cut(d.Subject, message.MaxAttrBytes)))
	}
	if strings.HasPrefix(d.Subject, request+".") {
		attrs = append(attrs, semconv.MessagingDestinationTemplate(request+".{tenant}"))
	}
	if id := d.Header.Get(message.HeaderMsgID); id != "" {
		attrs = append(attrs, semconv.MessagingMessageID(message.Cut(id, message.MaxAttrBytes)))
	}
	if out.AlertID != "" {
		attrs = append(attrs, attribute.String("alert_domains.alert_id", out.AlertID))
	}
	if res := out.Result; res != nil {
		attrs = append(attrs, attribute.String("alert_domains.result.status", res.Status))
		if res.Tenant != "" {
			attrs = append(attrs, attribute.String("alert_domains.tenant", res.Tenant))
		}
		if res.Cached != nil && *res.Cached {
			attrs = append(attrs, attribute.Bool("alert_domains.cached", true))
		}
		if res.Coalesced {
			attrs = append(attrs, attribute.Bool("alert_domains.coalesced", true))
		}
		if res.Error != nil {
			attrs = append(attrs, semconv.ErrorTypeKey.String(string(res.Error.Kind)))
			span.SetStatus(codes.Error, string(res.Error.Kind))
		}
	}
	if out.Action == consumer.Retry {
		span.SetStatus(codes.Error, "no result stored: the request will be redelivered")
	}
	span.SetAttributes(attrs...)
}

// resultTrace traces the publish of results: a producer span whose context the result carries.
type resultTrace struct {
	tracer       trace.Tracer
	prop         propagation.TextMapPropagator
	subjects     message.Subjects
	producerKind []trace.SpanStartOption
}

func newResultTrace(tp trace.TracerProvider, prop propagation.TextMapPropagator, subjects message.Subjects) resultTrace {
	if !slices.Contains(prop.Fields(), message.HeaderTraceparent) { // a result carries its traceparent whatever else (b3) goes out
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, prop)
	}
	return resultTrace{tracer: tp.Tracer(tracerName, trace.WithSchemaURL(semconv.SchemaURL)), prop: prop, subjects: subjects,
		producerKind: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}}
}

func (t resultTrace) start(ctx context.Context) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, "publish", t.producerKind...)
}

// inject replaces msg's traceparent, the request's, by ctx's span, if any.
func (t resultTrace) inject(ctx context.Context, msg *nats.Msg) {
	if msg != nil && trace.SpanContextFromContext(ctx).IsValid() {
		t.prop.Inject(ctx, message.HeaderCarrier(msg.Header))
	}
}

// end names the span "publish <SUCCESS_SUBJECT|FAILURE_SUBJECT>" and ends it.
func (t resultTrace) end(span trace.Span, msg *nats.Msg, out consumer.Outcome) {
	if span.IsRecording() && msg != nil {
		base := t.subjects.Failure
		if msg.Subject == t.subjects.Success || strings.HasPrefix(msg.Subject, t.subjects.Success+".") {
			base = t.subjects.Success
		}
		span.SetName("publish " + base)
		attrs := append(make([]attribute.KeyValue, 0, 6),
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingDestinationName(msg.Subject),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingMessageID(msg.Header.Get(message.HeaderMsgID)),
		)
		if strings.HasPrefix(msg.Subject, base+".") {
			attrs = append(attrs, semconv.MessagingDestinationTemplate(base+".{tenant}"))
		}
		span.SetAttributes(attrs...)
		if !out.Stored {
			span.SetStatus(codes.Error, "result not stored")
		}
	}
	span.End()
}
