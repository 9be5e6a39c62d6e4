package tests

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// otlpReceiver is an OTLP/HTTP trace receiver on loopback: it decodes the
// ExportTraceServiceRequest posted to /v1/traces and keeps its spans, or
// refuses every export (status, body) when refuse is set.
type otlpReceiver struct {
	srv    *httptest.Server
	refuse func(r *http.Request) (int, string)

	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]string // of the last export
	headers  []http.Header
}

func startReceiver(t *testing.T, refuse func(r *http.Request) (int, string)) *otlpReceiver {
	t.Helper()
	rec := &otlpReceiver{refuse: refuse}
	rec.srv = httptest.NewServer(http.HandlerFunc(rec.serve))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *otlpReceiver) serve(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.mu.Unlock()
	if rec.refuse != nil {
		status, body := rec.refuse(r)
		http.Error(w, body, status)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	data, err := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(data, &req)
	}
	if r.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", r.URL.Path, err), http.StatusBadRequest)
		return
	}
	rec.mu.Lock()
	for _, rs := range req.ResourceSpans {
		rec.resource = map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			rec.resource[kv.Key] = kv.Value.GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			rec.spans = append(rec.spans, ss.Spans...)
		}
	}
	rec.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// trace is the spans received of the trace traceID, by name.
func (rec *otlpReceiver) trace(traceID string) map[string][]*tracepb.Span {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := map[string][]*tracepb.Span{}
	for _, s := range rec.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

// sent is the headers of the first export, nil before one came.
func (rec *otlpReceiver) sent() http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.headers) == 0 {
		return nil
	}
	return rec.headers[0]
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if v, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
				return fmt.Sprint(v.IntValue)
			}
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// TestTraceOfOneRequest follows one request through the binary to an OTLP
// receiver: from the SIEM's traceparent, through the process span, the
// Defender call and the publish, to the result's traceparent; the log line
// of the request carries the same IDs.
func TestTraceOfOneRequest(t *testing.T) {
	t.Parallel()
	const alertID = "da637472900382838869_1364969609"
	const siemTrace, siemSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{alertID: {"www.example.com"}}})
	_, url := testenv.EmbeddedJetStream(t)
	rec := startReceiver(t, nil)
	p := testenv.StartServe(t, serviceEnv(emu, cert, url, "OTEL_EXPORTER_OTLP_ENDPOINT="+rec.srv.URL,
		"OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=test"))
	_, js := testenv.Connect(t, url)
	seq := publish(t, js, alertID, nats.Header{message.HeaderTraceparent: {"00-" + siemTrace + "-" + siemSpan + "-01"},
		message.HeaderTracestate: {"siem=42"}})
	res := waitResults(t, js, 1, 30*time.Second)[seq]
	tp := strings.Split(res.Header.Get(message.HeaderTraceparent), "-")
	if len(tp) != 4 || tp[1] != siemTrace || tp[2] == siemSpan || res.Header.Get(message.HeaderTracestate) != "siem=42" {
		t.Fatalf("result traceparent %q, tracestate %q: want the SIEM's trace and state, a span of the service",
			res.Header.Get(message.HeaderTraceparent), res.Header.Get(message.HeaderTracestate))
	}

	var spans map[string][]*tracepb.Span
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		spans = rec.trace(siemTrace)
		return len(spans["process "+requestSubject]) == 1 && len(spans["publish "+successSubject]) == 1 &&
			len(spans["GET /v1.0/security/alerts_v2/{id}"]) == 1
	}, "the request's spans exported")
	process, pub, call := spans["process "+requestSubject][0], spans["publish "+successSubject][0], spans["GET /v1.0/security/alerts_v2/{id}"][0]
	processID := hex.EncodeToString(process.SpanId)
	checks := []struct {
		what      string
		got, want string
	}{
		{"process parent", hex.EncodeToString(process.ParentSpanId), siemSpan},
		{"process kind", process.Kind.String(), "SPAN_KIND_CONSUMER"},
		{"process alert", spanAttr(process, "alert_domains.alert_id"), alertID},
		{"process status", spanAttr(process, "alert_domains.result.status"), "success"},
		{"process consumer", spanAttr(process, "messaging.consumer.group.name"), consumerName},
		{"call parent", hex.EncodeToString(call.ParentSpanId), processID},
		{"call kind", call.Kind.String(), "SPAN_KIND_CLIENT"},
		{"call status code", spanAttr(call, "http.response.status_code"), "200"},
		{"publish parent", hex.EncodeToString(pub.ParentSpanId), processID},
		{"publish kind", pub.Kind.String(), "SPAN_KIND_PRODUCER"},
		{"publish span is the result's parent", hex.EncodeToString(pub.SpanId), tp[2]},
		{"service.name", rec.resource["service.name"], "alert-domains"},
		{"resource attribute", rec.resource["deployment.environment.name"], "test"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	line := p.WaitForLine(t, `"msg":"success result stored"`, 10*time.Second)
	var logged struct{ TraceID, SpanID string }
	if err := json.Unmarshal([]byte(strings.NewReplacer("trace_id", "TraceID", "span_id", "SpanID").Replace(line)), &logged); err != nil ||
		logged.TraceID != siemTrace || logged.SpanID != processID {
		t.Errorf("log line %s: want trace_id %s and span_id %s", line, siemTrace, processID)
	}
	p.Stop(t)
}

// TestCollectorDownNeverSlows proves that a collector that is down (a
// closed port) neither loses nor holds up a request: 100 requests all get
// their results, the exports fail with one warning, and the service stops
// cleanly.
func TestCollectorDownNeverSlows(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	_, url := testenv.EmbeddedJetStream(t)
	down := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartServe(t, serviceEnv(emu, cert, url, "OTEL_EXPORTER_OTLP_ENDPOINT="+down,
		"OTEL_BSP_SCHEDULE_DELAY=20", "OTEL_BSP_EXPORT_TIMEOUT=300", "OTEL_BSP_MAX_QUEUE_SIZE=64", "SHUTDOWN_TIMEOUT=3s"))
	_, js := testenv.Connect(t, url)
	const n = 100
	for i := range n {
		publish(t, js, fmt.Sprintf("da637472900382838869_%d", 1000+i), nats.Header{
			message.HeaderTraceparent: {fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)}})
	}
	got := waitResults(t, js, n, 60*time.Second)
	for seq, r := range got {
		if r.Status != message.StatusSuccess || r.Header.Get(message.HeaderTraceparent) == "" {
			t.Errorf("request %d: %s, traceparent %q", seq, r.Raw, r.Header.Get(message.HeaderTraceparent))
		}
	}
	requestsAllAcked(t, js, 10*time.Second)
	p.WaitForLine(t, "tracing problem, spans may be lost", 20*time.Second)
	p.Stop(t)
	if warned := strings.Count(p.Output(), "tracing problem, spans may be lost"); warned != 1 {
		t.Errorf("%d warnings about the collector within a minute, want 1", warned)
	}
}

// TestOTLPHeadersNeverShown proves that the values of
// OTEL_EXPORTER_OTLP_HEADERS, sent to a collector that refuses them and
// quotes them back, never appear in the output (at debug level) nor in a
// result.
func TestOTLPHeadersNeverShown(t *testing.T) {
	t.Parallel()
	const token, key = "otlp-s3cr3t-t0ken-77", "k3y-0f-the-c0llect0r"
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	_, url := testenv.EmbeddedJetStream(t)
	rec := startReceiver(t, func(r *http.Request) (int, string) {
		var b bytes.Buffer
		_ = r.Header.Write(&b)
		return http.StatusUnauthorized, "refused: " + b.String()
	})
	p := testenv.StartServe(t, serviceEnv(emu, cert, url, "OTEL_EXPORTER_OTLP_ENDPOINT="+rec.srv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20"+token+",x-api-key="+key, "OTEL_BSP_SCHEDULE_DELAY=20", "LOG_LEVEL=debug"))
	_, js := testenv.Connect(t, url)
	for i := range 5 {
		publish(t, js, fmt.Sprintf("da637472900382838869_%d", i), nil)
	}
	results := waitResults(t, js, 5, 30*time.Second)
	p.WaitForLine(t, "tracing problem, spans may be lost", 20*time.Second)
	p.Stop(t)
	if got := rec.sent().Get("Authorization"); got != "Bearer "+token {
		t.Fatal("the collector got no export with the header")
	}
	out := p.Output()
	for _, r := range results {
		out += r.Raw + fmt.Sprint(r.Header)
	}
	for _, secret := range []string{token, key} {
		if strings.Contains(out, secret) {
			t.Errorf("%q shown:\n%s", secret, lastLines(out, 40))
		}
	}
}

// TestDemoPrintsSpans runs the demo with the console exporter: it prints
// its table as before and the spans of every request on stderr.
func TestDemoPrintsSpans(t *testing.T) {
	t.Parallel()
	p := testenv.StartService(t, testenv.BuildBinary(t), []string{"OTEL_TRACES_EXPORTER=console"}, "demo")
	if code, err := p.Wait(90 * time.Second); err != nil || code != 0 {
		t.Fatalf("demo exit %d (%v)\n%s", code, err, p.Output())
	}
	processed, traces := 0, map[string]bool{}
	for _, line := range strings.Split(p.Output(), "\n") {
		var span struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &span) != nil {
			continue
		}
		if span.Name == "process "+requestSubject {
			processed++
			traces[span.SpanContext.TraceID] = true
		}
	}
	if processed != 10 || len(traces) != 10 {
		t.Errorf("%d process spans in %d traces, want one trace per request of 10", processed, len(traces))
	}
	if out := p.Output(); !strings.Contains(out, "10 requests, 10 results") || !strings.Contains(out, "GET /v1.0/security/alerts_v2/{id}") {
		t.Errorf("demo output lacks its summary or the Defender calls' spans:\n%s", lastLines(out, 30))
	}
}
