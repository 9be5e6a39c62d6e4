package connector

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/alert-domains/alert-domains/connector"

// WithTracerProvider traces quota waits, token fetches and HTTP attempts.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *Client) error {
		if tp == nil {
			return fmt.Errorf("%w: nil tracer provider", ErrConfig)
		}
		c.tracer = tp.Tracer(tracerName, trace.WithSchemaURL(semconv.SchemaURL))
		return nil
	}
}

// acquire waits for a slot of the quota, if any. The wait becomes a span
// afterwards, from its measured start and duration, so that a quota without
// limits, which returns at once with no wait, costs no span.
func (c *Client) acquire(ctx context.Context) (release func(), err *Error) {
	if c.quota == nil {
		return func() {}, nil
	}
	start := time.Now()
	release, waited, werr := c.quota.Acquire(ctx)
	if waited > 0 || werr != nil {
		_, span := c.tracer.Start(ctx, "quota wait", trace.WithTimestamp(start))
		if werr != nil {
			span.SetStatus(codes.Error, "interrupted")
		}
		span.End(trace.WithTimestamp(start.Add(waited)))
	}
	if c.observer != nil {
		c.observer.QuotaWait(waited)
	}
	if werr != nil {
		return nil, canceled(ctx)
	}
	return release, nil
}

// startCall starts the span of one HTTP attempt, the resends-th again.
func (c *Client) startCall(ctx context.Context, target string, resends int) (context.Context, trace.Span) {
	ctx, span := c.tracer.Start(ctx, c.spanName, c.clientKind...)
	if !span.IsRecording() {
		return ctx, span
	}
	port := c.base.Port()
	if port == "" {
		port = "443"
		if c.base.Scheme == "http" {
			port = "80"
		}
	}
	n, _ := strconv.Atoi(port)
	attrs := append(make([]attribute.KeyValue, 0, 6), semconv.HTTPRequestMethodGet, semconv.URLFull(target),
		semconv.URLTemplate(c.wire.template()), semconv.ServerAddress(c.base.Hostname()), semconv.ServerPort(n))
	if resends > 0 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(resends))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// endCall ends the span of an HTTP attempt answered with status (0: none).
func endCall(span trace.Span, status int, err *Error) {
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 2)
		if status > 0 {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
		}
		if err != nil {
			typ := string(err.Kind)
			if status >= 400 {
				typ = strconv.Itoa(status)
			}
			attrs = append(attrs, semconv.ErrorTypeKey.String(typ))
			span.SetStatus(codes.Error, err.Message)
		}
		span.SetAttributes(attrs...)
	}
	span.End()
}

// endToken ends a token span with the classified kind only: the credential's
// own error may hold a secret.
func endToken(ctx context.Context, span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		e := tokenError(ctx, ctx, err)
		span.SetAttributes(semconv.ErrorTypeKey.String(string(e.Kind)))
		span.SetStatus(codes.Error, e.Message)
	}
	span.End()
}
