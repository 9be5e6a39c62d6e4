package connector_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// traced is a client whose spans a recorder keeps, and the parent span
// its lookups run under.
type traced struct {
	client *connector.Client
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
}

func newTraced(t *testing.T, srv *emulator.Server, api connector.API, opts ...connector.Option) *traced {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := newClient(t, srv, api, append(opts, connector.WithTracerProvider(tp))...)
	return &traced{client: c, spans: sr, tp: tp}
}

// lookup asks for id under a parent span and returns the parent's
// context and the spans ended under it, in the order they ended.
func (tr *traced) lookup(t *testing.T, id string) (trace.SpanContext, []sdktrace.ReadOnlySpan, error) {
	t.Helper()
	before := len(tr.spans.Ended())
	ctx, parent := tr.tp.Tracer("test").Start(t.Context(), "process")
	_, err := tr.client.Domains(ctx, id)
	parent.End()
	ended := tr.spans.Ended()[before:]
	return parent.SpanContext(), ended[:len(ended)-1], err
}

// named are the spans called name.
func named(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attrs are a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// callName is the name of an HTTP span of api: its URL template.
func callName(api connector.API) string { return "GET " + api.URLTemplate() }

// checkCall checks an HTTP span: its kind, parent, name, attributes and
// status for an answer of status, resend the resends before it.
func checkCall(t *testing.T, s sdktrace.ReadOnlySpan, parent trace.SpanContext, srvURL, id string, status, resends int, errType string) {
	t.Helper()
	if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanID() || s.Parent().TraceID() != parent.TraceID() {
		t.Errorf("span %q: kind %v, parent %v; want client under the lookup's span", s.Name(), s.SpanKind(), s.Parent().SpanID())
	}
	if strings.Contains(s.Name(), id) {
		t.Errorf("span name %q holds the alert ID", s.Name())
	}
	u, _ := url.Parse(srvURL)
	port, _ := strconv.Atoi(u.Port())
	a := attrs(s)
	want := map[attribute.Key]attribute.Value{
		"http.request.method":       attribute.StringValue("GET"),
		"server.address":            attribute.StringValue(u.Hostname()),
		"server.port":               attribute.IntValue(port),
		"http.response.status_code": attribute.IntValue(status),
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("span %q: %s = %v, want %v", s.Name(), k, a[k].Emit(), v.Emit())
		}
	}
	if full := a["url.full"].AsString(); !strings.HasPrefix(full, srvURL+"/") || !strings.Contains(full, id) {
		t.Errorf("url.full = %q, want the call for %s at %s", full, id, srvURL)
	}
	if got, want := "GET "+a["url.template"].AsString(), s.Name(); got != want {
		t.Errorf("url.template makes %q, want the span's name %q", got, want)
	}
	if got, ok := a["http.request.resend_count"]; resends > 0 && got.AsInt64() != int64(resends) || resends == 0 && ok {
		t.Errorf("http.request.resend_count = %v, want %d (absent for 0)", got.Emit(), resends)
	}
	if got := a["error.type"].AsString(); got != errType {
		t.Errorf("error.type = %q, want %q", got, errType)
	}
	if wantCode := map[bool]codes.Code{true: codes.Error, false: codes.Unset}[errType != ""]; s.Status().Code != wantCode {
		t.Errorf("status %v, want %v", s.Status().Code, wantCode)
	}
}

// TestTraceSpansOfEachAttempt proves the spans of a lookup on both APIs:
// one client span per HTTP attempt, named by the URL template, with the
// HTTP conventions' attributes, the resend count on a retry and the error
// type of an error answer; the token as a span of its own when fetched.
func TestTraceSpansOfEachAttempt(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		const id = "da637472900382838869_1364969609"
		cases := []struct {
			name    string
			script  []emulator.Answer
			status  []int // of each attempt
			errType []string
		}{
			{"success", nil, []int{200}, []string{""}},
			{"503 then success", []emulator.Answer{{Status: 503, Body: errorBody(api, "ServiceUnavailable")}}, []int{503, 200}, []string{"503", ""}},
			{"429 then success", []emulator.Answer{{Status: 429, Header: header("Retry-After", "1"), Body: errorBody(api, "TooManyRequests")}}, []int{429, 200}, []string{"429", ""}},
			{"not_found", []emulator.Answer{{Status: 404, Body: errorBody(api, "ResourceNotFound")}}, []int{404}, []string{"404"}},
			{"forbidden", []emulator.Answer{{Status: 403, Body: errorBody(api, "Forbidden")}}, []int{403}, []string{"403"}},
			{"bad_request", []emulator.Answer{{Status: 400, Body: errorBody(api, "BadRequest")}}, []int{400}, []string{"400"}},
			{"bad_response", []emulator.Answer{{Status: 200, Body: "<html>maintenance</html>"}}, []int{200}, []string{"bad_response"}},
			{"unauthorized after a fresh token", []emulator.Answer{{Status: 401, Body: errorBody(api, "Unauthorized")}, {Status: 401, Body: errorBody(api, "Unauthorized")}},
				[]int{401, 401}, []string{"401", "401"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				srv := newServer(t, emulator.Config{Alerts: map[string][]string{id: {"www.example.com"}}})
				srv.Script(id, tc.script...)
				// Room for one Retry-After of 1s.
				tr := newTraced(t, srv, api, connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, 5*time.Second))
				parent, spans, err := tr.lookup(t, id)
				if (err != nil) != (tc.errType[len(tc.errType)-1] != "") {
					t.Fatalf("Domains: %v", err)
				}
				calls := named(spans, callName(api))
				if len(calls) != len(tc.status) {
					t.Fatalf("%d HTTP spans, want %d: %v", len(calls), len(tc.status), spanNames(spans))
				}
				for i, s := range calls {
					checkCall(t, s, parent, srv.URL, id, tc.status[i], i, tc.errType[i])
				}
				// The first token, and after a 401 a fresh one.
				wantTokens := 1 + strings.Count(tc.name, "fresh token")
				if got := len(named(spans, "entra token")); got != wantTokens {
					t.Errorf("%d token spans, want %d: %v", got, wantTokens, spanNames(spans))
				}
				if len(spans) != len(calls)+wantTokens {
					t.Errorf("spans %v, want only the token and HTTP spans", spanNames(spans))
				}
			})
		}
	})
}

// TestTraceLegacyIDSecondCall proves that Graph's second call for an ID in
// the endpoint API's form is a span of its own, under the same parent,
// named by the template, not a resend of the first.
func TestTraceLegacyIDSecondCall(t *testing.T) {
	const legacy = "637612345678901234_1122334455"
	srv := newServer(t, emulator.Config{Alerts: map[string][]string{connector.GraphPrefix + legacy: {"portal.example.net"}}})
	tr := newTraced(t, srv, connector.Graph)
	parent, spans, err := tr.lookup(t, legacy)
	if err != nil {
		t.Fatal(err)
	}
	calls := named(spans, callName(connector.Graph))
	if len(calls) != 2 {
		t.Fatalf("%d HTTP spans, want 2: %v", len(calls), spanNames(spans))
	}
	checkCall(t, calls[0], parent, srv.URL, legacy, 404, 0, "404")
	checkCall(t, calls[1], parent, srv.URL, connector.GraphPrefix+legacy, 200, 0, "")
}

// TestTraceTokenOnlyWhenFetched proves that a token from the client's
// cache makes no span, and that a failed fetch is a span with the failure
// kind and a message without the credential's words.
func TestTraceTokenOnlyWhenFetched(t *testing.T) {
	const id = "da637472900382838869_1364969609"
	srv := newServer(t, emulator.Config{Alerts: map[string][]string{id: {"www.example.com"}}})
	tr := newTraced(t, srv, connector.Graph)
	if _, spans, err := tr.lookup(t, id); err != nil || len(named(spans, "entra token")) != 1 {
		t.Fatalf("first lookup: %v, spans %v: want one token span", err, spanNames(spans))
	}
	_, spans, err := tr.lookup(t, id)
	if err != nil || len(named(spans, "entra token")) != 0 || len(named(spans, callName(connector.Graph))) != 1 {
		t.Fatalf("second lookup: %v, spans %v: want the HTTP span only", err, spanNames(spans))
	}

	refused := newServer(t, emulator.Config{Alerts: map[string][]string{id: {"www.example.com"}}})
	refused.ScriptToken(emulator.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`, EchoForm: true})
	tr = newTraced(t, refused, connector.Graph)
	_, spans, err = tr.lookup(t, id)
	tokens := named(spans, "entra token")
	if err == nil || len(tokens) != 1 {
		t.Fatalf("lookup with a refused secret: %v, spans %v: want an error and one token span", err, spanNames(spans))
	}
	s := tokens[0]
	if s.SpanKind() != trace.SpanKindClient || s.Status().Code != codes.Error || attrs(s)["error.type"].AsString() != "unauthorized" {
		t.Errorf("token span: kind %v, status %v, error.type %q; want client, error, unauthorized", s.SpanKind(), s.Status(), attrs(s)["error.type"].AsString())
	}
	if desc := s.Status().Description; strings.Contains(desc, refused.ClientSecret()) || strings.Contains(desc, "AADSTS") {
		t.Errorf("token span status %q holds what the credential said", desc)
	}
	if len(named(spans, callName(connector.Graph))) != 0 {
		t.Errorf("spans %v: no HTTP call without a token", spanNames(spans))
	}
}

// TestTraceQuotaWait proves that each attempt's wait for the quota is an
// internal span whose duration is the wait.
func TestTraceQuotaWait(t *testing.T) {
	const id = "da637472900382838869_1364969609"
	srv := newServer(t, emulator.Config{Alerts: map[string][]string{id: {"www.example.com"}}})
	window := 300 * time.Millisecond
	lim := connector.NewLimiter([]connector.Limit{{Count: 1, Window: window}})
	tr := newTraced(t, srv, connector.Graph, connector.WithQuota(lim))
	for i, minWait := range []time.Duration{0, window / 2} {
		parent, spans, err := tr.lookup(t, id)
		if err != nil {
			t.Fatal(err)
		}
		waits := named(spans, "quota wait")
		if len(waits) != 1 {
			t.Fatalf("lookup %d: spans %v, want one quota wait", i, spanNames(spans))
		}
		w := waits[0]
		if w.SpanKind() != trace.SpanKindInternal || w.Parent().SpanID() != parent.SpanID() {
			t.Errorf("quota wait: kind %v, parent %v; want internal under the lookup's span", w.SpanKind(), w.Parent().SpanID())
		}
		if d := w.EndTime().Sub(w.StartTime()); d < minWait {
			t.Errorf("lookup %d: quota wait lasted %s, want at least %s (one call per %s)", i, d, minWait, window)
		}
		if call := named(spans, callName(connector.Graph)); len(call) != 1 || call[0].StartTime().Before(w.EndTime()) {
			t.Errorf("lookup %d: the HTTP call must start after the wait", i)
		}
	}
}

// TestTraceNoQuotaNoWait proves that a client whose quota has no limits
// (DEFENDER_RATE_LIMITS=none) records no quota wait span, as there is none.
func TestTraceNoQuotaNoWait(t *testing.T) {
	const id = "da637472900382838869_1364969609"
	srv := newServer(t, emulator.Config{Alerts: map[string][]string{id: {"www.example.com"}}})
	tr := newTraced(t, srv, connector.Graph, connector.WithQuota(connector.NewLimiter(nil)))
	_, spans, err := tr.lookup(t, id)
	if err != nil {
		t.Fatal(err)
	}
	if waits := named(spans, "quota wait"); len(waits) != 0 || len(named(spans, callName(connector.Graph))) != 1 {
		t.Errorf("spans %v: want one HTTP call and no quota wait", spanNames(spans))
	}
}

// TestTraceOffRecordsNothing proves that a client without a tracer
// provider, or with one that samples nothing, works as before and puts no
// span in the lookup's context.
func TestTraceOffRecordsNothing(t *testing.T) {
	const id = "da637472900382838869_1364969609"
	srv := newServer(t, emulator.Config{Alerts: map[string][]string{id: {"www.example.com"}}})
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sdktrace.NeverSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, c := range []*connector.Client{newClient(t, srv, connector.Graph), newClient(t, srv, connector.Graph, connector.WithTracerProvider(tp))} {
		if res, err := c.Domains(t.Context(), id); err != nil || len(res.Domains) != 1 {
			t.Fatalf("Domains = %v, %v", res, err)
		}
	}
	if n := len(sr.Ended()); n != 0 {
		t.Errorf("%d spans recorded with nothing sampled", n)
	}
	if _, err := connector.New(connector.Graph, srv.URL, staticCredential{"t"}, "s", connector.WithTracerProvider(nil)); err == nil {
		t.Error("New accepted a nil tracer provider")
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	return names
}
