package tests

// One result per request, whatever the request carries and whatever happens
// between a stored result and its acknowledgement: oversized headers and
// answers, a request stream deleted and re-created, downtime longer than
// the result stream's duplicate window, hooks and the safety net.

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector/defendertest"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestOversizedHeadersAndAnswersGetOneResult: request headers near the 64 KiB
// limit of a stored message's headers, and an answer whose domains would
// not fit in one message, still end with exactly one result each.
func TestOversizedHeadersAndAnswersGetOneResult(t *testing.T) {
	huge := make([]string, 30000)
	for i := range huge {
		huge[i] = fmt.Sprintf("host-%05d.a-rather-long-domain-name.example.com", i)
	}
	emu, cert := emulator(t, defendertest.WithAnyAlert(), defendertest.WithAlert("huge_answer", huge...))
	_, url := testenv.EmbeddedJetStream(t)
	startService(t, serviceEnv(emu, cert, url))
	_, js := jsConn(t, url)

	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	seqTrace := publish(t, js, "alert_big_traceparent", nats.Header{"traceparent": {strings.Repeat("a", 65400)}})
	seqCorr := publish(t, js, "alert_big_correlation", nats.Header{"Correlation-Id": {strings.Repeat("c", 65000)}})
	seqValid := publish(t, js, "alert_valid_traceparent", nats.Header{"traceparent": {valid}})
	seqUpper := publish(t, js, "alert_upper_traceparent", nats.Header{"traceparent": {strings.ToUpper(valid)}})
	seqHuge := publish(t, js, "huge_answer", nil)

	got := waitResults(t, js, 5, 60*time.Second)
	requestsAllAcked(t, js, 10*time.Second)
	for _, seq := range []uint64{seqTrace, seqCorr, seqValid, seqUpper} {
		if r := got[seq]; r.Status != "success" {
			t.Errorf("request %d: %.300s, want a success", seq, r.Raw)
		}
	}
	if tp := got[seqTrace].Header.Get("traceparent"); tp != "" {
		t.Errorf("an invalid traceparent of %d bytes was copied to the result", len(tp))
	}
	if tp := got[seqUpper].Header.Get("traceparent"); tp != "" {
		t.Errorf("an upper-case traceparent was copied to the result: %q", tp)
	}
	if tp := got[seqValid].Header.Get("traceparent"); tp != valid {
		t.Errorf("valid traceparent on the result: %q, want %q", tp, valid)
	}
	r := got[seqCorr]
	if n := len(r.Header.Get("Correlation-Id")); n == 0 || n > 256 {
		t.Errorf("Correlation-Id header of %d bytes on the result, want 1 to 256", n)
	}
	if n := len(r.CorrelationID); n == 0 || n > 256 {
		t.Errorf("correlationId of %d bytes in the result, want 1 to 256", n)
	}
	h := got[seqHuge]
	if h.Status != "failure" || h.Error == nil || h.Error.Kind != "bad_response" || !strings.Contains(h.Error.Message, "too large") {
		t.Errorf("answer too large for a result: %.300s, want a bad_response failure", h.Raw)
	}
}

// provisioned loads the configuration of env and creates its topology, as
// an operator does before starting services with PROVISION=false.
func provisioned(t *testing.T, env []string) (*config.Config, broker.Topology) {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, broker.NewTopology(cfg)
}

// TestRequestStreamRecreatedGetsNewResults: a request stream deleted and
// created again under a running service starts its sequences at 1 again;
// the requests it stores then still get their results, not dropped as
// duplicates of the results of the old stream's requests.
func TestRequestStreamRecreatedGetsNewResults(t *testing.T) {
	emu, cert := emulator(t, defendertest.WithAnyAlert())
	_, url := testenv.EmbeddedJetStream(t)
	_, js := jsConn(t, url)
	env := serviceEnv(emu, cert, url, "PROVISION=false")
	_, topo := provisioned(t, env)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	p := startService(t, env)

	before := alertIDs("before", 5)
	publishAll(t, js, before)
	waitResultCount(t, js, len(before), 30*time.Second)
	requestsAllAcked(t, js, 10*time.Second)

	// The operator deletes the request stream (and with it the consumers)
	// and provisions it again.
	if err := js.DeleteStream(t.Context(), requestStream); err != nil {
		t.Fatal(err)
	}
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	after := alertIDs("after", 5)
	seqs := publishAll(t, js, after)
	if seqs[0] != 1 {
		t.Fatalf("the new stream stored its first request at %d, want 1", seqs[0])
	}
	testenv.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool {
		return emu.Calls() >= len(before)+len(after)
	}, "the new requests looked up:\n%s", p.Output())
	requestsAllAcked(t, js, 30*time.Second)

	byAlert := map[string]int{}
	for _, r := range results(t, js) {
		byAlert[r.AlertID]++
	}
	for _, id := range append(before, after...) {
		if byAlert[id] != 1 {
			t.Errorf("%s: %d results, want 1", id, byAlert[id])
		}
	}
}
