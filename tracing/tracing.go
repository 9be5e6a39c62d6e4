// Package tracing sets up OpenTelemetry traces from the standard OTEL_*
// variables alone; tracing is off unless an OTLP endpoint is set or
// OTEL_TRACES_EXPORTER is console.
package tracing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr/funcr"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/time/rate"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/message"
)

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME says otherwise.
const DefaultServiceName = "alert-domains"

// Provider is the tracing of one process, or no-ops when tracing is off.
type Provider struct {
	sdk  *sdktrace.TracerProvider // nil: off
	prop propagation.TextMapPropagator
}

// New sets up tracing as lookup says; console spans go to stderr, the SDK's
// warnings to logger, rate-limited and with the OTLP headers' values hidden.
func New(ctx context.Context, lookup config.Lookup, stderr io.Writer, logger *slog.Logger) (*Provider, error) {
	off := &Provider{prop: propagation.NewCompositeTextMapPropagator()}
	name, err := exporterName(lookup, logger)
	if err != nil || name == "" {
		return off, err
	}
	w := &warner{logger: logger, secrets: headerSecrets(lookup), every: rate.Sometimes{Interval: time.Minute}}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { w.warn(err.Error()) }))
	otel.SetLogger(funcr.New(func(prefix, args string) { w.warn(prefix + args) }, funcr.Options{}))
	exp, err := newExporter(ctx, name, lookup, stderr)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(DefaultServiceName), semconv.ServiceVersion(buildinfo.Read().Version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil { // reported, and what could be read kept
		otel.Handle(fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err))
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{sdk: sdk, prop: autoprop.NewTextMapPropagator()}, nil
}

// exporterName is otlp once an endpoint is set, console, or "" for none.
func exporterName(lookup config.Lookup, logger *slog.Logger) (string, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return "", nil
	}
	endpoint := get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	switch name := strings.ToLower(get("OTEL_TRACES_EXPORTER")); name {
	case "none":
		return "", nil
	case "console":
		return name, nil
	case "", "otlp":
		if endpoint {
			return "otlp", nil
		}
		if name == "otlp" {
			logger.Warn("tracing is off: OTEL_TRACES_EXPORTER is otlp but no OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT)")
		}
		return "", nil
	default:
		return "", fmt.Errorf("%w: OTEL_TRACES_EXPORTER: %q is not otlp, console or none", config.ErrInvalid, name)
	}
}

// newExporter is the console exporter, or OTLP over the protocol the environment names.
func newExporter(ctx context.Context, name string, lookup config.Lookup, stderr io.Writer) (sdktrace.SpanExporter, error) {
	if name == "console" {
		return stdouttrace.New(stdouttrace.WithWriter(stderr))
	}
	proto, _ := lookup("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto, _ = lookup("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.TrimSpace(proto) {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	}
	return nil, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL: %q is not http/protobuf or grpc", config.ErrInvalid, proto)
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// TracerProvider is the SDK's tracer provider, or a no-op one.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p.sdk == nil {
		return noop.NewTracerProvider()
	}
	return p.sdk
}

// Propagator is OTEL_PROPAGATORS' propagator; with tracing off, nothing.
func (p *Provider) Propagator() propagation.TextMapPropagator { return p.prop }

// Shutdown exports the spans not yet exported, until ctx ends.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// Logger is logger with LogHandler when tracing is on.
func (p *Provider) Logger(logger *slog.Logger) *slog.Logger {
	if p.sdk == nil {
		return logger
	}
	return slog.New(LogHandler(logger.Handler()))
}

// LogHandler is h adding the trace_id and span_id of the context's span.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// warner logs what OpenTelemetry reports, once a minute at most, secrets hidden.
type warner struct {
	logger  *slog.Logger
	secrets []string
	every   rate.Sometimes
}

func (w *warner) warn(text string) {
	w.every.Do(func() {
		for _, s := range w.secrets {
			text = strings.ReplaceAll(text, s, "[REDACTED]")
		}
		w.logger.Warn("tracing problem, spans may be lost (said at most once a minute)", slog.String("error", message.Printable(text, 4096)))
	})
}

// headerSecrets are the OTLP headers' values (a malformed pair's whole text), as given and decoded, and each word.
func headerSecrets(lookup config.Lookup) []string {
	var secrets []string
	for _, k := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		v, _ := lookup(k)
		for pair := range strings.SplitSeq(v, ",") {
			value := pair[strings.IndexByte(pair, '=')+1:] // a pair without "=" is all secret: the SDK logs it whole
			decoded, err := url.PathUnescape(value)
			if err != nil {
				decoded = value
			}
			for _, s := range append([]string{strings.TrimSpace(value), strings.TrimSpace(decoded)}, strings.Fields(decoded)...) {
				if len(s) >= 4 {
					secrets = append(secrets, s)
				}
			}
		}
	}
	return secrets
}
