package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

const (
	alertTwo  = "da637472900382838869_1364969609"
	alertNone = "da636688558380765161_2136280442"
)

func TestRequestForms(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{
		alertTwo:                          {"www.example.com", "cdn.example.net", "www.example.com"},
		alertNone:                         {},
		"da637551227677560813_-961444813": {"neg.example.org"},
	}})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url))
	_, js := testenv.Connect(t, url)

	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	type want struct {
		alert, corr string
		domains     []string
	}
	cases := map[uint64]want{}
	add := func(body string, h nats.Header, w want) { cases[publish(t, js, body, h)] = w }
	add("  "+alertTwo+"\n", nil, want{alertTwo, "", []string{"www.example.com", "cdn.example.net"}})
	add(`{"alertId":"`+alertTwo+`","correlationId":"siem-42"}`, nil, want{alertTwo, "siem-42", []string{"www.example.com", "cdn.example.net"}})
	add(`{"id":"da637551227677560813_-961444813","title":"Suspicious PowerShell","severity":"High"}`, nil, want{"da637551227677560813_-961444813", "", []string{"neg.example.org"}})
	add(alertNone, nats.Header{"Correlation-Id": {"hdr-7"}, "traceparent": {tp}}, want{alertNone, "hdr-7", []string{}})

	got := waitResults(t, js, len(cases), 30*time.Second)
	for seq, w := range cases {
		r := got[seq]
		if r.Status != "success" || r.Subject != successSubject {
			t.Errorf("request %d: %s on %s, want success: %s", seq, r.Status, r.Subject, r.Raw)
			continue
		}
		if r.AlertID != w.alert || r.CorrelationID != w.corr || fmt.Sprint(r.Domains) != fmt.Sprint(w.domains) {
			t.Errorf("request %d: %s, want alert %s correlation %q domains %v", seq, r.Raw, w.alert, w.corr, w.domains)
		}
		if !strings.Contains(r.Raw, `"domains":[`) {
			t.Errorf("request %d: domains not a list: %s", seq, r.Raw)
		}
		// Two requests for alertTwo are in flight together: the second may
		// share the first one's call (coalesced, no attempt of its own).
		if (r.Attempts != 1 && !(r.Coalesced && r.Attempts == 0)) || r.Cached == nil || *r.Cached {
			t.Errorf("request %d: attempts %d cached %v coalesced %v", seq, r.Attempts, r.Cached, r.Coalesced)
		}
		if _, err := time.Parse(time.RFC3339, r.CompletedAt); err != nil || !strings.HasSuffix(r.CompletedAt, "Z") || len(r.CompletedAt) != len("2026-11-27T09:14:03.512Z") {
			t.Errorf("request %d: completedAt %q not RFC 3339 UTC with milliseconds", seq, r.CompletedAt)
		}
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Result-Status") != "success" || r.Header.Get("Alert-Id") != w.alert {
			t.Errorf("request %d: headers %v", seq, r.Header)
		}
		if w.corr != "" && r.Header.Get("Correlation-Id") != w.corr {
			t.Errorf("request %d: Correlation-Id header %q", seq, r.Header.Get("Correlation-Id"))
		}
		if w.alert == alertNone && r.Header.Get("traceparent") != tp {
			t.Errorf("request %d: traceparent %q not passed on", seq, r.Header.Get("traceparent"))
		}
	}
	requestsAllAcked(t, js, 10*time.Second)
}

func TestFailureKinds(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url))
	_, js := testenv.Connect(t, url)

	jsonErr := func(code string) string {
		return `{"error":{"code":"` + code + `","message":"free text","target":"track-` + code + `"}}`
	}
	forever := func(a emulator.Answer) []emulator.Answer {
		answers := make([]emulator.Answer, 200)
		for i := range answers {
			answers[i] = a
		}
		return answers
	}
	tests := []struct {
		id         string
		answers    []emulator.Answer
		kind       string
		httpStatus int
		code       string
	}{
		{"kind_bad_request", []emulator.Answer{{Status: 400, Body: jsonErr("InvalidInput")}}, "bad_request", 400, "InvalidInput"},
		{"kind_other_4xx", []emulator.Answer{{Status: 409, Body: ""}}, "bad_request", 409, ""},
		{"kind_unauthorized", []emulator.Answer{{Status: 401, Body: jsonErr("Unauthorized")}, {Status: 401, Body: jsonErr("Unauthorized")}}, "unauthorized", 401, "Unauthorized"},
		{"kind_forbidden", []emulator.Answer{{Status: 403, Body: jsonErr("Forbidden")}}, "forbidden", 403, "Forbidden"},
		{"kind_not_found", []emulator.Answer{{Status: 404, Body: jsonErr("ResourceNotFound")}}, "not_found", 404, "ResourceNotFound"},
		{"kind_not_found_empty", []emulator.Answer{{Status: 404}}, "not_found", 404, ""},
		{"kind_throttled", forever(emulator.Answer{Status: 429, Header: http.Header{"Retry-After": {"0"}}, Body: jsonErr("TooManyRequests")}), "throttled", 429, "TooManyRequests"},
		{"kind_unavailable", forever(emulator.Answer{Status: 503, Body: "<html>Service Unavailable</html>"}), "unavailable", 503, ""},
		{"kind_bad_response", []emulator.Answer{{Status: 200, Body: "<html>not json</html>"}}, "bad_response", 200, ""},
	}
	seqs := map[uint64]int{}
	for i, tt := range tests {
		emu.Script(tt.id, tt.answers...)
		seqs[publish(t, js, tt.id, nil)] = i
	}
	invalidSeq := publish(t, js, "../machines", nil)

	got := waitResults(t, js, len(tests)+1, 60*time.Second)
	for seq, i := range seqs {
		tt, r := tests[i], got[seq]
		if r.Status != "failure" || r.Subject != failureSubject || r.Error == nil {
			t.Errorf("%s: %s", tt.id, r.Raw)
			continue
		}
		if string(r.Error.Kind) != tt.kind || r.Error.HTTPStatus != tt.httpStatus || r.Error.Code != tt.code {
			t.Errorf("%s: kind %s http %d code %q, want %s %d %q", tt.id, r.Error.Kind, r.Error.HTTPStatus, r.Error.Code, tt.kind, tt.httpStatus, tt.code)
		}
		if r.AlertID != tt.id || r.Request == nil || *r.Request != tt.id || r.Error.Message == "" {
			t.Errorf("%s: alertId, request or message missing: %s", tt.id, r.Raw)
		}
		if r.Header.Get("Result-Status") != "failure" {
			t.Errorf("%s: Result-Status %q", tt.id, r.Header.Get("Result-Status"))
		}
		retried := tt.kind == "throttled" || tt.kind == "unavailable"
		if retried && r.Attempts < 2 {
			t.Errorf("%s: %d attempts, want retries", tt.id, r.Attempts)
		}
		if !retried && tt.kind != "unauthorized" && r.Attempts != 1 {
			t.Errorf("%s: %d attempts, terminal answers are not retried", tt.id, r.Attempts)
		}
		if tt.kind == "unauthorized" && r.Attempts != 2 {
			t.Errorf("unauthorized: %d attempts, want 2 (one fresh token)", r.Attempts)
		}
	}
	inv := got[invalidSeq]
	if inv.Error == nil || inv.Error.Kind != "invalid_request" || inv.AlertID != "" || inv.Attempts != 0 {
		t.Errorf("invalid request: %s", inv.Raw)
	}
	requestsAllAcked(t, js, 10*time.Second)
}

func TestInvalidBodiesNeverReachDefender(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url))
	_, js := testenv.Connect(t, url)

	bodies := []string{
		"", " ", "\n\t", "../machines", "..%2fmachines", "%2e%2e", "%2e%2e%2fmachines", "abc/../../machines",
		"abc?$top=1", "abc#frag", "abc def", "abc\x00def", "\x00\x01\x02\xff\xfe", "ålert", strings.Repeat("a", 129),
		strings.Repeat("x", 70<<10), `["` + alertTwo + `"]`, `"` + alertTwo + `"`, `{"alertId":123}`, `{"alertId":null}`,
		`{"alertId":["a"]}`, `{"id":{"x":1}}`, `{"alertId":"a","correlationId":5}`, `{"title":"no id"}`, `{"alertId":"../x"}`,
		`{"alertId":"` + alertTwo, `{}`, `{"alertId":""}`, `{"alertId":"` + strings.Repeat("b", 129) + `"}`, "12.5e3",
	}
	if len(bodies) != 30 {
		t.Fatalf("%d bodies, the test wants 30", len(bodies))
	}
	seqs := map[uint64]string{}
	for _, b := range bodies {
		seqs[publish(t, js, b, nil)] = b
	}
	got := waitResults(t, js, len(bodies), 30*time.Second)
	for seq, body := range seqs {
		r := got[seq]
		if r.Status != "failure" || r.Error == nil || r.Error.Kind != "invalid_request" || r.Attempts != 0 {
			t.Errorf("body %.40q: %.300s", body, r.Raw)
		}
		if r.Request == nil || len(*r.Request) > 4096 {
			t.Errorf("body %.40q: request text missing or over 4 KiB", body)
		}
		if len(body) > 4096 && !r.RequestTruncated {
			t.Errorf("body of %d bytes: requestTruncated not set", len(body))
		}
	}
	if n := emu.Calls(); n != 0 {
		t.Errorf("Defender was called %d times for invalid requests", n)
	}
	// Invalid requests are terminated, not left pending.
	requestsAllAcked(t, js, 10*time.Second)

	// And the requests behind them are not blocked.
	seq := publish(t, js, alertTwo, nil)
	got = waitResults(t, js, len(bodies)+1, 30*time.Second)
	if got[seq].Status != "success" {
		t.Errorf("valid request after invalid ones: %s", got[seq].Raw)
	}
}

func TestSameRequestDeliveredTwiceHasOneResult(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{alertTwo: {"www.example.com"}}})
	_, url := testenv.EmbeddedJetStream(t)
	svc := testenv.StartServe(t, serviceEnv(emu, cert, url))
	_, js := testenv.Connect(t, url)

	seq := publish(t, js, alertTwo, nil)
	waitResults(t, js, 1, 30*time.Second)
	requestsAllAcked(t, js, 10*time.Second)

	// Deliver the same stored request again, as after a crash between the
	// result and the acknowledgement.
	if _, err := js.ResetConsumerToSequence(t.Context(), requestStream, consumerName, seq); err != nil {
		t.Fatalf("reset consumer: %v", err)
	}
	svc.WaitForLine(t, `"msg":"result stored by an earlier delivery"`, 30*time.Second)
	requestsAllAcked(t, js, 10*time.Second)
	if got := results(t, js); len(got) != 1 {
		t.Fatalf("%d results for one request delivered twice, want 1", len(got))
	}
	if n := emu.CallsFor(alertTwo); n != 1 {
		t.Errorf("%d Defender calls for one request delivered twice, want 1: the second delivery asked again", n)
	}
}

// TestResultStreamUnansweredForAWhile: a result stream that stops storing
// results for a while (here its success subject is taken away; on a
// cluster, its leader is lost) costs no second Defender call: the answer in
// hand is stored by the same delivery once the stream answers again.
func TestResultStreamUnansweredForAWhile(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{alertTwo: {"www.example.com"}}})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url))
	_, js := testenv.Connect(t, url)

	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	broken := cfg
	broken.Subjects = []string{failureSubject}
	if _, err := js.UpdateStream(t.Context(), broken); err != nil {
		t.Fatal(err)
	}
	seq := publish(t, js, alertTwo, nil)
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return emu.CallsFor(alertTwo) == 1 }, "the Defender call")
	if n := len(results(t, js)); n != 0 {
		t.Fatalf("%d results stored while the success subject was gone; the test proves nothing", n)
	}
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	got := waitResults(t, js, 1, 30*time.Second)
	requestsAllAcked(t, js, 10*time.Second)
	if r := got[seq]; r.Status != "success" || r.Delivery != 1 {
		t.Errorf("after the stream answered again: %s, want a success from the first delivery", r.Raw)
	}
	if n := emu.CallsFor(alertTwo); n != 1 {
		t.Errorf("%d Defender calls, want 1", n)
	}
	if n := len(results(t, js)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}

func TestShutdownMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true, Latency: 30 * time.Millisecond})
	_, url := testenv.EmbeddedJetStream(t)
	env := serviceEnv(emu, cert, url, "CONCURRENCY=8", "LOG_LEVEL=info")
	p := testenv.StartServe(t, env)
	_, js := testenv.Connect(t, url)

	const n = 300
	for i := range n {
		publish(t, js, fmt.Sprintf("alert_%04d", i), nil)
	}
	testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return len(results(t, js)) >= 20 }, "some results")
	p.Stop(t)
	// The shutdown must have met work in flight, and left work for the next
	// process, or the test proves nothing.
	if !strings.Contains(p.Output(), `"msg":"waiting for in-flight requests"`) {
		t.Fatalf("nothing was in flight at the shutdown; the test proves nothing:\n%s", p.Output())
	}
	if partial := len(results(t, js)); partial >= n {
		t.Fatalf("every request finished before the shutdown (%d); the test proves nothing", partial)
	}
	testenv.StartServe(t, env)
	got := waitResults(t, js, n, 60*time.Second)
	for seq, r := range got {
		if r.Status != "success" {
			t.Errorf("request %d: %s", seq, r.Raw)
		}
	}
	requestsAllAcked(t, js, 10*time.Second)
}

func TestProvisionFalseNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{})
	_, url := testenv.EmbeddedJetStream(t)
	p := testenv.StartService(t, testenv.BuildBinary(t), serviceEnv(emu, cert, url, "PROVISION=false"), "serve")
	code, err := p.Wait(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Fatal("serve with PROVISION=false and no streams exited 0")
	}
	out := p.Output()
	for _, name := range []string{requestStream, resultStream, consumerName} {
		if !strings.Contains(out, name) {
			t.Errorf("error output does not name %s:\n%s", name, out)
		}
	}

	// With the topology in place, PROVISION=false starts.
	_, js := testenv.Connect(t, url)
	for _, sc := range []jetstream.StreamConfig{
		{Name: requestStream, Subjects: []string{requestSubject, requestSubject + ".*", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + requestStream + "." + consumerName}},
		{Name: resultStream, Subjects: []string{successSubject, failureSubject, successSubject + ".*", failureSubject + ".*"}, Duplicates: 15 * time.Minute},
	} {
		if _, err := js.CreateStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
	}
	for _, cc := range []jetstream.ConsumerConfig{
		{Durable: consumerName, FilterSubjects: []string{requestSubject, requestSubject + ".*"}, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: 10},
		{Durable: consumerName + "-max-deliveries", FilterSubject: "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + requestStream + "." + consumerName, AckPolicy: jetstream.AckExplicitPolicy},
	} {
		if _, err := js.CreateConsumer(t.Context(), requestStream, cc); err != nil {
			t.Fatal(err)
		}
	}
	svc := testenv.StartServe(t, serviceEnv(emu, cert, url, "PROVISION=false"))
	svc.Stop(t)
}

func TestInvalidConfigurationExitsTwo(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t)
	for _, env := range [][]string{
		{"ACK_WAIT=soon"},
		{"DEFENDER_API_URL=http://api.securitycenter.microsoft.com"},
		{"AZURE_TENANT_ID=t", "AZURE_CLIENT_ID=c"}, // no credential
	} {
		p := testenv.StartService(t, bin, append(env, "NATS_URL=nats://127.0.0.1:1"), "serve")
		code, err := p.Wait(30 * time.Second)
		if err != nil || code != 2 {
			t.Errorf("%v: exit %d (%v), want 2\n%s", env, code, err, p.Output())
		}
		name := strings.SplitN(env[0], "=", 2)[0]
		if env[0] == "AZURE_TENANT_ID=t" {
			name = "AZURE_CLIENT_SECRET"
		}
		if !strings.Contains(p.Output(), name) {
			t.Errorf("%v: error does not name %s:\n%s", env, name, p.Output())
		}
	}
}
