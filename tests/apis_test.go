package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// apiAnswers are scripted answers in each API's own wire format, written
// from Microsoft's documented bodies.
type apiAnswers struct {
	badRequest, forbidden, throttled, unavailable string
}

var wireOf = map[connector.API]apiAnswers{
	connector.Graph: {
		badRequest:  `{"error":{"code":"BadRequest","message":"Invalid filter clause","innerError":{"date":"2026-12-07T09:14:03","request-id":"b1","client-request-id":"b1"}}}`,
		forbidden:   `{"error":{"code":"Forbidden","message":"Missing application roles.","innerError":{"date":"2026-12-07T09:14:03","request-id":"f1","client-request-id":"f1"}}}`,
		throttled:   `{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"date":"2026-12-07T09:14:03","request-id":"t1","client-request-id":"t1"}}}`,
		unavailable: `{"error":{"code":"ServiceUnavailable","message":"Service unavailable.","innerError":{"date":"2026-12-07T09:14:03","request-id":"u1","client-request-id":"u1"}}}`,
	},
	connector.MDE: {
		badRequest:  `{"error":{"code":"InvalidInput","message":"Invalid input","target":"b1"}}`,
		forbidden:   `{"error":{"code":"Forbidden","message":"Missing role","target":"f1"}}`,
		throttled:   `{"error":{"code":"TooManyRequests","message":"API calls quota exceeded!","target":"t1"}}`,
		unavailable: `{"error":{"code":"InternalServerError","message":"An error occurred","target":"u1"}}`,
	},
}

// TestEveryOutcomeOnBothAPIs: the same requests end in the same results on
// Microsoft Graph and on the Defender for Endpoint API: a success, an
// endpoint ID Graph knows with its prefix, one failure of each kind, a
// token Microsoft revoked replaced by a fresh one, and the quota held.
// Results name the API that answered.
func TestEveryOutcomeOnBothAPIs(t *testing.T) {
	t.Parallel()
	for _, api := range []connector.API{connector.Graph, connector.MDE} {
		t.Run(string(api), func(t *testing.T) {
			t.Parallel()
			testEveryOutcome(t, api)
		})
	}
}

func testEveryOutcome(t *testing.T, api connector.API) {
	emu := newRecordingEmulator(t, emulator.Config{SeedData: true})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	w := wireOf[api]
	const limit = 8
	testenv.StartServe(t, emu.env(srv.URL(), "DEFENDER_API="+string(api), "DEFENDER_RATE_LIMITS=8/1s",
		"RETRY_INITIAL_INTERVAL=10ms", "RETRY_MAX_INTERVAL=50ms", "RETRY_MAX_ELAPSED=400ms", "CACHE_TTL=0"))

	json := http.Header{"Content-Type": {"application/json"}}
	times := func(n int, a emulator.Answer) []emulator.Answer { return slices.Repeat([]emulator.Answer{a}, n) }
	emu.Script("outcome_bad_request", emulator.Answer{Status: 400, Body: w.badRequest, Header: json})
	emu.Script("outcome_unauthorized", times(2, emulator.Answer{Status: 401, Body: `{"error":{"code":"Unauthorized","message":"x"}}`, Header: json})...)
	emu.Script("outcome_forbidden", emulator.Answer{Status: 403, Body: w.forbidden, Header: json})
	emu.Script("outcome_throttled", times(100, emulator.Answer{Status: 429, Body: w.throttled, Header: http.Header{"Retry-After": {"0"}, "Content-Type": {"application/json"}}})...)
	emu.Script("outcome_unavailable", times(100, emulator.Answer{Status: 503, Body: w.unavailable, Header: json})...)
	emu.Script("outcome_bad_response", emulator.Answer{Body: "<html>maintenance</html>", Header: http.Header{"Content-Type": {"text/html"}}})

	// A token Microsoft revoked before it expired: one fresh token, and
	// the request succeeds.
	first := publish(t, js, "da637472900382838869_1364969609", nil)
	if r := waitResults(t, js, 1, 30*time.Second)[first]; r.Status != message.StatusSuccess {
		t.Fatalf("first request: %s", r.Raw)
	}
	emu.ExpireTokens()
	tokens := len(emu.Tokens())
	seq := publish(t, js, "da637200417169017725_183736971", nil)
	if r := waitResults(t, js, 2, 30*time.Second)[seq]; r.Status != message.StatusSuccess || r.Attempts != 2 || len(emu.Tokens()) != tokens+1 {
		t.Errorf("after the tokens were revoked: %s with %d new tokens, want a success after 2 attempts and 1 new token", r.Raw, len(emu.Tokens())-tokens)
	}

	legacyAttempts := map[connector.API]int{connector.Graph: 2, connector.MDE: 1}[api]
	cases := []struct {
		subject, body string
		kind          message.Kind
		attempts      int // 0: any
		domains       []string
	}{
		{requestSubject, "da637472900382838869_1364969609", "", 1, []string{"www.example.com", "cdn.example.net"}},
		{requestSubject, "637612345678901234_1122334455", "", legacyAttempts, []string{"portal.example.net", "mail.example.net"}},
		{requestSubject, "../machines", message.KindInvalidRequest, 0, nil},
		{requestSubject, "outcome_bad_request", message.KindBadRequest, 1, nil},
		{requestSubject, "outcome_unauthorized", message.KindUnauthorized, 0, nil},
		{requestSubject, "outcome_forbidden", message.KindForbidden, 1, nil},
		{requestSubject, "da000000000000000000_404", message.KindNotFound, 1, nil},
		{requestSubject, "outcome_throttled", message.KindThrottled, 0, nil},
		{requestSubject, "outcome_unavailable", message.KindUnavailable, 0, nil},
		{requestSubject, "outcome_bad_response", message.KindBadResponse, 1, nil},
		{requestSubject + ".initech", "da637472900382838869_1364969609", message.KindUnknownTenant, 0, nil},
	}
	seqs := make([]uint64, len(cases))
	for i, c := range cases {
		seqs[i] = publishTo(t, js, c.subject, c.body)
	}
	got := waitResults(t, js, 2+len(cases), time.Minute)
	for i, c := range cases {
		r := got[seqs[i]]
		if r.Kind() != c.kind || (c.kind == "") != (r.Status == message.StatusSuccess) {
			t.Errorf("%s: %s, want kind %q", c.body, r.Raw, c.kind)
			continue
		}
		if c.attempts > 0 && r.Attempts != c.attempts {
			t.Errorf("%s: %d attempts, want %d: %s", c.body, r.Attempts, c.attempts, r.Raw)
		}
		if c.domains != nil && !slices.Equal(r.Domains, c.domains) {
			t.Errorf("%s: domains %v, want %v", c.body, r.Domains, c.domains)
		}
		if routed := c.kind != message.KindInvalidRequest && c.kind != message.KindUnknownTenant; routed && r.API != string(api) {
			t.Errorf("%s: api %q, want %q: %s", c.body, r.API, api, r.Raw)
		}
		if c.kind == message.KindForbidden && !strings.Contains(r.Error.Message, api.Permission()) {
			t.Errorf("forbidden: %q does not name %s", r.Error.Message, api.Permission())
		}
	}
	if legacy := got[seqs[1]]; (legacy.GraphAlertID == "da637612345678901234_1122334455") != (api == connector.Graph) {
		t.Errorf("endpoint ID: graphAlertId %q on %s", legacy.GraphAlertID, api)
	}

	// The quota: never more than 8 calls in any second, over a burst.
	ids := alertIDs("da_quota", 24)
	publishAll(t, js, ids)
	waitResults(t, js, 2+len(cases)+len(ids), time.Minute)
	var calls []time.Time
	for _, c := range emu.Recorded() {
		calls = append(calls, c.At)
	}
	if most, at := maxInWindow(calls, time.Second); most > limit {
		t.Errorf("%d calls in the second from %s, limit %d", most, at.Format("15:04:05.000"), limit)
	}
}
