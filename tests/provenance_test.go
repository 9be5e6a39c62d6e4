package tests

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// TestForgedResultsAreIgnored: on a NATS that lets any client publish on
// the result subjects, what such a client publishes there is not believed.
// A forged success for bravo's alert on alpha's subject, naming bravo in
// its body, does not answer bravo's request from the cache: Microsoft is
// asked and bravo gets its own domains. A forged failure naming a stored
// request (its sequence, without the exact message ID of the service's
// result) is neither planned by replay nor counted by status, and its
// terminal escape never reaches the operator. Every one is counted in
// alert_domains_results_ignored_total. On both APIs.
func TestForgedResultsAreIgnored(t *testing.T) {
	t.Parallel()
	for _, api := range []string{"graph", "mde"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			testForgedResults(t, api)
		})
	}
}

func testForgedResults(t *testing.T, api string) {
	alpha, certA := startTenantEmulator(t, "alpha", 1, emulator.Config{})
	bravo, certB := startTenantEmulator(t, "bravo", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	listen, base := httpEndpoint(t)
	env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{alpha, bravo},
		"DEFENDER_API="+api, "HTTP_LISTEN="+listen, "CACHE_TTL=1h")
	testenv.StartServe(t, env)

	forge := func(subject string, header nats.Header, body map[string]any) {
		t.Helper()
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Header: header, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	// The review's attack: bravo's answer for the alert, on alpha's subject.
	forge(successSubject+".alpha", nil, map[string]any{
		"status": "success", "tenant": "bravo", "alertId": sharedAlert, "domains": []string{"evil.attacker.example"},
	})
	// The same on bravo's own subject, with the headers the service sets
	// and a message ID of the service's form naming a request not stored.
	forge(successSubject+".bravo", nats.Header{
		nats.MsgIdHdr:              {message.ResultMsgID(requestStream, 999, time.Unix(0, 1))},
		message.HeaderResultStatus: {message.StatusSuccess}, message.HeaderTenant: {"bravo"},
	}, map[string]any{
		"status": "success", "tenant": "bravo", "alertId": sharedAlert, "domains": []string{"evil.attacker.example"}, "requestSequence": 999,
	})

	seq := publishTo(t, js, requestSubject+".bravo", sharedAlert)
	// Three messages on the result subjects: the two forgeries and bravo's.
	r := waitResults(t, js, 3, 30*time.Second)[seq]
	if r.Status != message.StatusSuccess || r.Tenant != "bravo" || strings.Join(r.Domains, ",") != "c2.bravo.example" || r.Cached != nil && *r.Cached {
		t.Fatalf("bravo's request after the forgeries: %s, want bravo's own domains from Microsoft", r.Raw)
	}
	if n := bravo.emu.Calls(); n != 1 {
		t.Errorf("bravo's Microsoft saw %d calls, want 1: a forged result answered", n)
	}

	// A forged failure for alpha's request, once its success is stored.
	aseq := publishTo(t, js, requestSubject+".alpha", sharedAlert)
	if r := waitResults(t, js, 4, 30*time.Second)[aseq]; r.Status != message.StatusSuccess {
		t.Fatalf("alpha's request: %s", r.Raw)
	}
	forge(failureSubject+".alpha", nats.Header{
		nats.MsgIdHdr:              {message.ResultMsgID(requestStream, aseq, time.Time{})},
		message.HeaderResultStatus: {message.StatusFailure}, message.HeaderTenant: {"alpha"},
	}, map[string]any{
		"status": "failure", "tenant": "alpha", "alertId": sharedAlert, "requestSequence": aseq,
		"error": map[string]any{"kind": "unavailable", "message": "\x1b[2Jforged"},
	})

	code, out := opsCommand(t, env, "replay", "--failed", "--dry-run")
	if code != 0 || !strings.Contains(out, "would republish 0") || !strings.Contains(out, "not written by the service") {
		t.Errorf("replay --failed --dry-run: exit %d, want nothing planned and the forgery named as ignored:\n%s", code, out)
	}
	code, out = opsCommand(t, env, "status")
	if code != 0 || !strings.Contains(out, "FAILURES IN THE LAST HOUR: none") || !strings.Contains(out, "not written by the service") {
		t.Errorf("status: exit %d, want no failure and a warning of the ignored results:\n%s", code, out)
	}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "bravo" && f[1] != "graph" && f[1] != "mde" && f[1] != "1" {
			t.Errorf("status counts %s results of bravo in the last hour, want 1: a forgery counted\n%s", f[1], out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a terminal escape off the wire reached the operator:\n%q", out)
	}

	ignored := 0.0
	for _, reason := range message.Reasons {
		ignored += scrapeMetrics(t, base)[`alert_domains_results_ignored_total{reason="`+reason+`"}`]
	}
	if ignored < 1 {
		t.Errorf("alert_domains_results_ignored_total = %v, want the forgeries counted", ignored)
	}
}
