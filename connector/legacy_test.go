package connector_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

func TestLegacyAlertID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"636688558380765161_2136280442", true},
		{"637551227677560813_-961444813", true},
		{"637200417169017725_183736971", true},
		{"1_2", true},
		{"b1c2d3e4-0000-4000-8000-00000000abcd_123", true},
		{"B1C2D3E4-0000-4000-8000-00000000ABCD_-123", true},
		{"da637472900382838869_1364969609", false},
		{"fa637472900382838869_1364969609", false},
		{"ed637472900382838869_1364969609", false},
		{"637472900382838869", false},
		{"637472900382838869_", false},
		{"_1364969609", false},
		{"637472900382838869_1_2", false},
		{"637472900382838869__1", false},
		{"637472900382838869_+1", false},
		{"b1c2d3e4-0000-4000-8000-00000000abcd", false},
		{"b1c2d3e4000040008000-00000000abcd_1", false},
		{"alert_1", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := connector.LegacyAlertID(tt.id); got != tt.want {
			t.Errorf("LegacyAlertID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// TestLegacyIDAgainstTheEmulator: an ID in the endpoint API's form that
// Graph answers 404 is asked once more as "da" + ID; both calls count in
// Attempts, wait for the quota and count against it. An ID with a product
// prefix is asked once, and the endpoint API never asks twice.
func TestLegacyIDAgainstTheEmulator(t *testing.T) {
	const guidID = "b1c2d3e4-0000-4000-8000-00000000abcd_-42"
	tests := []struct {
		name     string
		api      connector.API
		id       string
		domains  []string
		graphID  string
		kind     message.Kind
		code     string
		calls    map[string]int // calls per ID as asked
		attempts int
	}{
		{name: "digits", api: connector.Graph, id: "637612345678901234_1122334455",
			domains: []string{"portal.example.net", "mail.example.net"}, graphID: "da637612345678901234_1122334455",
			calls: map[string]int{"637612345678901234_1122334455": 1, "da637612345678901234_1122334455": 1}, attempts: 2},
		{name: "negative suffix", api: connector.Graph, id: "637551227677560813_-961444813",
			domains: []string{"update.example.com", "telemetry.example.net"}, graphID: "da637551227677560813_-961444813",
			calls: map[string]int{"637551227677560813_-961444813": 1, "da637551227677560813_-961444813": 1}, attempts: 2},
		{name: "guid", api: connector.Graph, id: guidID,
			domains: []string{"guid.example.org"}, graphID: "da" + guidID,
			calls: map[string]int{guidID: 1, "da" + guidID: 1}, attempts: 2},
		{name: "second form unknown too", api: connector.Graph, id: "111111111111111111_2",
			kind: message.KindNotFound, code: "NotFound",
			calls: map[string]int{"111111111111111111_2": 1, "da111111111111111111_2": 1}, attempts: 2},
		{name: "da prefix asked once", api: connector.Graph, id: "da111111111111111111_2",
			kind: message.KindNotFound, code: "NotFound",
			calls: map[string]int{"da111111111111111111_2": 1, "dada111111111111111111_2": 0}, attempts: 1},
		{name: "other prefix asked once", api: connector.Graph, id: "fa111111111111111111_2",
			kind: message.KindNotFound, code: "NotFound",
			calls: map[string]int{"fa111111111111111111_2": 1, "dafa111111111111111111_2": 0}, attempts: 1},
		{name: "not the endpoint form", api: connector.Graph, id: "alert_1",
			kind: message.KindNotFound, code: "NotFound",
			calls: map[string]int{"alert_1": 1, "daalert_1": 0}, attempts: 1},
		{name: "mde never asks twice", api: connector.MDE, id: "111111111111111111_2",
			kind: message.KindNotFound, code: "ResourceNotFound",
			calls: map[string]int{"111111111111111111_2": 1, "da111111111111111111_2": 0}, attempts: 1},
		{name: "mde knows the bare id", api: connector.MDE, id: "637612345678901234_1122334455",
			domains: []string{"portal.example.net", "mail.example.net"},
			calls:   map[string]int{"637612345678901234_1122334455": 1, "da637612345678901234_1122334455": 0}, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.api)+"/"+tt.name, func(t *testing.T) {
			srv := newServer(t, emulator.Config{Alerts: map[string][]string{guidID: {"guid.example.org"}}, SeedData: true})
			rec := &recorder{}
			limiter := connector.NewLimiter([]connector.Limit{{Count: 1000, Window: time.Hour}})
			c := newClient(t, srv, tt.api, connector.WithQuota(limiter), connector.WithObserver(rec))
			res, err := c.Domains(t.Context(), tt.id)
			if res.Attempts != tt.attempts {
				t.Errorf("Attempts = %d, want %d", res.Attempts, tt.attempts)
			}
			for id, n := range tt.calls {
				if got := srv.CallsFor(id); got != n {
					t.Errorf("%d calls for %s, want %d", got, id, n)
				}
			}
			if used := limiter.Used(time.Hour); used != tt.attempts {
				t.Errorf("the limiter counted %d calls, want %d", used, tt.attempts)
			}
			if n := len(rec.quotaWaits()); n != tt.attempts {
				t.Errorf("%d quota waits, want %d", n, tt.attempts)
			}
			if tt.kind != "" {
				e := asError(t, err)
				if e.Kind != tt.kind || e.HTTPStatus != 404 || e.Code != tt.code {
					t.Errorf("error = %+v, want %s 404 %s", e, tt.kind, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Domains, tt.domains) || res.GraphAlertID != tt.graphID {
				t.Errorf("Domains = %q, GraphAlertID %q; want %q, %q", res.Domains, res.GraphAlertID, tt.domains, tt.graphID)
			}
		})
	}
}

// TestLegacyIDOnTheWire: the paths Graph is asked, and what each answer
// of the two calls comes to, against a plain server that records them.
func TestLegacyIDOnTheWire(t *testing.T) {
	const (
		id     = "636688558380765161_2136280442"
		second = "da" + id
	)
	notFound := scripted{status: 404, body: errorBody(connector.Graph, "NotFound")}
	found := scripted{body: successBody(connector.Graph, second, "www.example.com", "cdn.example.net")}
	first, again := callPath(connector.Graph, id), callPath(connector.Graph, second)
	tests := []struct {
		name     string
		api      connector.API
		id       string
		answers  []scripted
		paths    []string
		domains  []string
		graphID  string
		kind     message.Kind
		attempts int
	}{
		{name: "second form found", api: connector.Graph, id: id, answers: []scripted{notFound, found},
			paths: []string{first, again}, domains: []string{"www.example.com", "cdn.example.net"}, graphID: second, attempts: 2},
		{name: "second form not found", api: connector.Graph, id: id, answers: []scripted{notFound, notFound},
			paths: []string{first, again}, kind: message.KindNotFound, attempts: 2},
		{name: "second form retried", api: connector.Graph, id: id,
			answers: []scripted{notFound, {status: 503, body: errorBody(connector.Graph, "ServiceUnavailable")}, {status: 429, header: header("Retry-After", "0")}, found},
			paths:   []string{first, again, again, again}, domains: []string{"www.example.com", "cdn.example.net"}, graphID: second, attempts: 4},
		{name: "second form refused", api: connector.Graph, id: id, answers: []scripted{notFound, {status: 403, body: errorBody(connector.Graph, "Forbidden")}},
			paths: []string{first, again}, kind: message.KindForbidden, attempts: 2},
		{name: "first form retried, then the second", api: connector.Graph, id: id,
			answers: []scripted{{status: 500}, notFound, found},
			paths:   []string{first, first, again}, domains: []string{"www.example.com", "cdn.example.net"}, graphID: second, attempts: 3},
		{name: "first form found", api: connector.Graph, id: id, answers: []scripted{{body: successBody(connector.Graph, id, "a.example")}},
			paths: []string{first}, domains: []string{"a.example"}, attempts: 1},
		{name: "first form refused", api: connector.Graph, id: id, answers: []scripted{{status: 400, body: errorBody(connector.Graph, "BadRequest")}, found},
			paths: []string{first}, kind: message.KindBadRequest, attempts: 1},
		{name: "prefixed id", api: connector.Graph, id: second, answers: []scripted{notFound, found},
			paths: []string{again}, kind: message.KindNotFound, attempts: 1},
		{name: "mde", api: connector.MDE, id: id, answers: []scripted{{status: 404, body: errorBody(connector.MDE, "ResourceNotFound")}, found},
			paths: []string{callPath(connector.MDE, id)}, kind: message.KindNotFound, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newPathServer(t, tt.answers...)
			limiter := connector.NewLimiter([]connector.Limit{{Count: 1000, Window: time.Hour}})
			c := srv.client(t, tt.api, connector.WithQuota(limiter))
			res, err := c.Domains(t.Context(), tt.id)
			if got := srv.seen(); !reflect.DeepEqual(got, tt.paths) {
				t.Errorf("paths asked %q, want %q", got, tt.paths)
			}
			if res.Attempts != tt.attempts || limiter.Used(time.Hour) != tt.attempts {
				t.Errorf("Attempts = %d, limiter counted %d, want %d", res.Attempts, limiter.Used(time.Hour), tt.attempts)
			}
			if tt.kind != "" {
				if e := asError(t, err); e.Kind != tt.kind {
					t.Errorf("error = %+v, want %s", e, tt.kind)
				}
				if !errors.Is(err, &connector.Error{Kind: tt.kind}) {
					t.Errorf("errors.Is(err, kind %s) = false", tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Domains, tt.domains) || res.GraphAlertID != tt.graphID {
				t.Errorf("Domains = %q, GraphAlertID %q; want %q, %q", res.Domains, res.GraphAlertID, tt.domains, tt.graphID)
			}
		})
	}
}
