package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lmittmann/tint"
	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/alert-domains/alert-domains/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestExporterName proves which environments turn tracing on, with which
// exporter, and that a value the service has no exporter for is an error.
func TestExporterName(t *testing.T) {
	const endpoint = "http://127.0.0.1:4318"
	cases := []struct {
		name string
		env  map[string]string
		want string // "" off; "error" an error
	}{
		{"nothing set", nil, ""},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, "otlp"},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint + "/v1/traces"}, "otlp"},
		{"otlp with an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, "otlp"},
		{"otlp without an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, ""},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "console"},
		{"console in capitals", map[string]string{"OTEL_TRACES_EXPORTER": " Console "}, "console"},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, ""},
		{"disabled wins over console", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}, ""},
		{"disabled false", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, "otlp"},
		{"zipkin", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, "error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			got, err := exporterName(config.MapEnv(tc.env), slog.New(slog.NewJSONHandler(&logs, nil)))
			if tc.want == "error" {
				if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
					t.Fatalf("err = %v, want an invalid configuration naming OTEL_TRACES_EXPORTER", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("exporterName = %q, %v; want %q", got, err, tc.want)
			}
			if warned := strings.Contains(logs.String(), "tracing is off"); warned != (tc.name == "otlp without an endpoint") {
				t.Errorf("warning logged: %v, in %q", warned, logs.String())
			}
		})
	}
}

// TestNewOffAndErrors proves that New with nothing set is off, at no-op
// cost, and that a protocol the exporters lack is a clear error.
func TestNewOffAndErrors(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	p, err := New(t.Context(), config.MapEnv(nil), &bytes.Buffer{}, logger)
	if err != nil || p.Enabled() {
		t.Fatalf("New with nothing set: enabled %v, %v", p != nil && p.Enabled(), err)
	}
	if p.Logger(logger) != logger || p.Shutdown(t.Context()) != nil {
		t.Error("tracing off must leave the logger as it is and shut down at once")
	}
	_, span := p.TracerProvider().Tracer("t").Start(t.Context(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("tracing off records spans")
	}
	_, err = New(t.Context(), config.MapEnv(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}), &bytes.Buffer{}, logger)
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), `"http/json" is not http/protobuf or grpc`) {
		t.Errorf("err = %v, want an invalid configuration naming the protocol", err)
	}
}

// TestConsoleWritesSpans proves that the console exporter writes each
// span to the writer given, as one JSON object per line, by shutdown.
func TestConsoleWritesSpans(t *testing.T) {
	var out bytes.Buffer
	p, err := New(t.Context(), config.MapEnv(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), &out, slog.New(slog.DiscardHandler))
	if err != nil || !p.Enabled() {
		t.Fatalf("New: %v", err)
	}
	_, span := p.TracerProvider().Tracer("t").Start(t.Context(), "one request")
	span.End()
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name     string
		Resource []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Name != "one request" {
		t.Fatalf("console output %q: %v", out.String(), err)
	}
	for _, kv := range got.Resource {
		if kv.Key == "service.name" && kv.Value.Value != DefaultServiceName {
			t.Errorf("service.name = %v, want %s", kv.Value.Value, DefaultServiceName)
		}
	}
}

// TestLogHandlerAddsIDs proves that lines logged in a span's context
// carry its trace and span IDs, in JSON and in text, and lines without a
// span carry none.
func TestLogHandlerAddsIDs(t *testing.T) {
	p, err := New(t.Context(), config.MapEnv(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), &bytes.Buffer{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	ctx, span := p.TracerProvider().Tracer("t").Start(t.Context(), "x")
	defer span.End()
	sc := span.SpanContext()
	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return tint.NewHandler(b, &tint.Options{NoColor: true}) },
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			logger := p.Logger(slog.New(newHandler(&b))).With(slog.String("component", "c"))
			logger.InfoContext(ctx, "in a span")
			logger.Info("outside")
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], sc.TraceID().String()) || !strings.Contains(lines[0], sc.SpanID().String()) ||
				!strings.Contains(lines[0], "trace_id") || !strings.Contains(lines[0], "span_id") {
				t.Errorf("line in a span %q: want trace_id %s and span_id %s", lines[0], sc.TraceID(), sc.SpanID())
			}
			if strings.Contains(lines[len(lines)-1], "trace_id") {
				t.Errorf("line without a span %q carries a trace ID", lines[len(lines)-1])
			}
		})
	}
}

// TestWarnerBoundedAndScrubbed proves that what OpenTelemetry reports is
// logged at most once per interval, and never with a value of the OTLP
// exporter's headers.
func TestWarnerBoundedAndScrubbed(t *testing.T) {
	secrets := headerSecrets(config.MapEnv(map[string]string{
		"OTEL_EXPORTER_OTLP_HEADERS":        "Authorization=Bearer%20s3cr3t-token-value,x-tenant=acme-42",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=k3y-v4lue",
	}))
	var logs bytes.Buffer
	w := &warner{logger: slog.New(slog.NewJSONHandler(&logs, nil)), secrets: secrets, every: rate.Sometimes{Interval: time.Hour}}
	for range 100 {
		w.warn("export failed: 401 Unauthorized: header Authorization: Bearer s3cr3t-token-value x-tenant: acme-42; k3y-v4lue rejected; raw Bearer%20s3cr3t-token-value")
	}
	out := logs.String()
	if n := strings.Count(out, "\n"); n != 1 {
		t.Errorf("%d lines for 100 reports within the interval, want 1:\n%s", n, out)
	}
	for _, s := range []string{"s3cr3t-token-value", "acme-42", "k3y-v4lue"} {
		if strings.Contains(out, s) {
			t.Errorf("log holds %q: %s", s, out)
		}
	}
	if !strings.Contains(out, "401 Unauthorized") {
		t.Errorf("log lost the reason: %s", out)
	}
}

// TestNewRoutesSDKErrors proves that New sends OpenTelemetry's reports
// to the service's logger, scrubbed, instead of the standard log.
func TestNewRoutesSDKErrors(t *testing.T) {
	var logs bytes.Buffer
	p, err := New(t.Context(), config.MapEnv(map[string]string{"OTEL_TRACES_EXPORTER": "console",
		"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abcdef123456"}), &bytes.Buffer{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	otel.Handle(errors.New("export to collector with Bearer abcdef123456 refused"))
	if out := logs.String(); !strings.Contains(out, "refused") || strings.Contains(out, "abcdef123456") {
		t.Errorf("logged %q: want the report without the header's value", out)
	}
}

// TestInvalidResourceAttributesWarn proves that OTEL_RESOURCE_ATTRIBUTES
// the SDK cannot read is a warning, as the specification asks, not a
// failure to start.
func TestInvalidResourceAttributesWarn(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team")
	var logs bytes.Buffer
	p, err := New(t.Context(), config.MapEnv(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), &bytes.Buffer{}, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil || !p.Enabled() {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	if !strings.Contains(logs.String(), "tracing problem, spans may be lost") || !strings.Contains(logs.String(), "OTEL_RESOURCE_ATTRIBUTES") {
		t.Errorf("logged %q, want a warning about the attributes", logs.String())
	}
}

// TestMalformedHeadersNeverLogged: an OTLP headers value the SDK cannot
// read (a colon for "=", a comma inside a value) is logged by the SDK as
// it is; its secret still never reaches the log.
func TestMalformedHeadersNeverLogged(t *testing.T) {
	for _, headers := range []string{"Authorization: Bearer s3cr3t-token-value", "api-key=abc,s3cr3t-token-value"} {
		t.Run(headers, func(t *testing.T) {
			env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_HEADERS": headers}
			for k, v := range env {
				t.Setenv(k, v) // the SDK reads the environment itself
			}
			var logs bytes.Buffer
			p, err := New(t.Context(), config.MapEnv(env), &bytes.Buffer{}, slog.New(slog.NewJSONHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = p.Shutdown(ctx)
			if out := logs.String(); !strings.Contains(out, "tracing problem") || strings.Contains(out, "s3cr3t-token-value") {
				t.Errorf("want the SDK's report without the secret:\n%s", out)
			}
		})
	}
}

// TestWarnerDropsControlCharacters: text a collector sent (an error body
// with terminal escapes) is logged without control characters.
func TestWarnerDropsControlCharacters(t *testing.T) {
	var logs bytes.Buffer
	w := &warner{logger: slog.New(slog.NewTextHandler(&logs, nil)), every: rate.Sometimes{Interval: time.Hour}}
	w.warn("traces export: 400 Bad Request (body: \x1b[2J\x1b[31mall good\x1b]0;pwned\a)")
	if out := logs.String(); !strings.Contains(out, "all good") || strings.ContainsAny(out, "\x1b\a") || strings.Contains(out, `\x1b`) {
		t.Errorf("logged %q", out)
	}
}
