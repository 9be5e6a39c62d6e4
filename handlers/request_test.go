package handlers

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/connector"
)

func TestDecode(t *testing.T) {
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name      string
		body      string
		header    nats.Header
		wantID    string
		wantCorr  string
		wantError bool
	}{
		{name: "plain", body: "da637472900382838869_1364969609", wantID: "da637472900382838869_1364969609"},
		{name: "plain with white space", body: "  636688558380765161_2136280442\r\n", wantID: "636688558380765161_2136280442"},
		{name: "negative suffix", body: "da637551227677560813_-961444813", wantID: "da637551227677560813_-961444813"},
		{name: "json alertId", body: `{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`, wantID: "da637472900382838869_1364969609", wantCorr: "siem-42"},
		{name: "json alertId without correlation", body: `{"alertId":"abc"}`, wantID: "abc"},
		{name: "defender alert object", body: `{"id":"da637200417169017725_183736971","title":"Suspicious","severity":"High","evidence":[]}`, wantID: "da637200417169017725_183736971"},
		{name: "alertId wins over id", body: `{"id":"other","alertId":"abc"}`, wantID: "abc"},
		{name: "correlation header", body: "abc", header: hdr("Correlation-Id", "from-header"), wantID: "abc", wantCorr: "from-header"},
		{name: "body correlation beats header", body: `{"alertId":"abc","correlationId":"body"}`, header: hdr("Correlation-Id", "hdr"), wantID: "abc", wantCorr: "body"},
		{name: "empty", body: "", wantError: true},
		{name: "white space only", body: " \n\t ", wantError: true},
		{name: "path traversal", body: "../machines", wantError: true},
		{name: "encoded traversal", body: "%2e%2e", wantError: true},
		{name: "query", body: "abc?$top=1", wantError: true},
		{name: "fragment", body: "abc#x", wantError: true},
		{name: "slash", body: "abc/def", wantError: true},
		{name: "space inside", body: "abc def", wantError: true},
		{name: "too long", body: strings.Repeat("a", 129), wantError: true},
		{name: "longest valid", body: strings.Repeat("a", 128), wantID: strings.Repeat("a", 128)},
		{name: "unicode letters", body: "ålert", wantError: true},
		{name: "binary", body: "\x00\x01\xff\xfe", wantError: true},
		{name: "json array", body: `["abc"]`, wantError: true},
		{name: "json string", body: `"abc"`, wantError: true},
		{name: "json number id", body: `{"alertId":123}`, wantError: true},
		{name: "json null id", body: `{"alertId":null}`, wantError: true},
		{name: "json object id", body: `{"id":{"x":1}}`, wantError: true},
		{name: "json bool correlation", body: `{"alertId":"abc","correlationId":true}`, wantError: true},
		{name: "json without id", body: `{"title":"x"}`, wantError: true},
		{name: "json invalid id", body: `{"alertId":"../machines"}`, wantError: true},
		{name: "broken json", body: `{"alertId":"abc"`, wantError: true},
		{name: "huge", body: strings.Repeat("x", MaxRequestBytes+1), wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode([]byte(tt.body), tt.header)
			if tt.wantError {
				if err == nil {
					t.Fatalf("Decode(%q) = %+v, want an error", tt.body, req)
				}
				if !errors.Is(err, connector.ErrInvalidRequest) || !errors.Is(err, ErrInvalidRequest) {
					t.Errorf("error %v is not an invalid_request", err)
				}
				if req.AlertID != "" {
					t.Errorf("invalid request kept alert ID %q", req.AlertID)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.body, err)
			}
			if req.AlertID != tt.wantID || req.CorrelationID != tt.wantCorr {
				t.Errorf("Decode(%q) = %+v, want id %q correlation %q", tt.body, req, tt.wantID, tt.wantCorr)
			}
		})
	}
}

func TestCorrelationIDCleaned(t *testing.T) {
	req, err := Decode([]byte(`{"alertId":"abc","correlationId":"a\r\nInjected: x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(req.CorrelationID, "\r\n") {
		t.Errorf("correlation ID keeps control characters: %q", req.CorrelationID)
	}
	long := strings.Repeat("c", 1000)
	req, _ = Decode([]byte(`{"alertId":"abc","correlationId":"`+long+`"}`), nil)
	if len(req.CorrelationID) > maxCorrelationID {
		t.Errorf("correlation ID not bounded: %d bytes", len(req.CorrelationID))
	}
}

func TestRequestText(t *testing.T) {
	text, truncated := requestText([]byte("ok \xff\xfe end"))
	if truncated || !utf8.ValidString(text) || !strings.Contains(text, "\uFFFD") {
		t.Errorf("requestText(invalid UTF-8) = %q, %v", text, truncated)
	}
	big := strings.Repeat("é", 3000) // 6000 bytes, two-byte runes
	text, truncated = requestText([]byte(big))
	if !truncated || len(text) > 4096 || !utf8.ValidString(text) || strings.Contains(text, "\uFFFD") {
		t.Errorf("requestText(6000 bytes) = %d bytes, truncated %v, valid %v", len(text), truncated, utf8.ValidString(text))
	}
	text, truncated = requestText([]byte("short"))
	if truncated || text != "short" {
		t.Errorf("requestText(short) = %q, %v", text, truncated)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"da637472900382838869_1364969609",
		`{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`,
		`{"id":"636688558380765161_2136280442"}`,
		"../machines", "%2e%2e", "", `{"alertId":1}`, "\xff", `{"id":"a","alertId":null}`,
	} {
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, corr string) {
		h := nats.Header{}
		h.Set(HeaderCorrelationID, corr)
		req, err := Decode(body, h)
		if err != nil {
			if req.AlertID != "" {
				t.Fatalf("error with alert ID %q", req.AlertID)
			}
			if !errors.Is(err, connector.ErrInvalidRequest) {
				t.Fatalf("error %v is not invalid_request", err)
			}
		} else if connector.ValidateAlertID(req.AlertID) != nil {
			t.Fatalf("accepted invalid alert ID %q", req.AlertID)
		}
		if strings.ContainsAny(req.CorrelationID, "\r\n\x00") || !utf8.ValidString(req.CorrelationID) {
			t.Fatalf("correlation ID %q unsafe for a header", req.CorrelationID)
		}
		res := Failure(req.AlertID, errors.New("x"), 0, testNow).WithRequest(body)
		if !utf8.ValidString(*res.Request) || len(*res.Request) > 4096 {
			t.Fatalf("request text invalid or unbounded: %d bytes", len(*res.Request))
		}
	})
}

func TestValidTraceparent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", false}, // upper case
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, // invalid version
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false}, // zero trace ID
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false}, // zero parent ID
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
		{"", false},
		{strings.Repeat("a", 65400), false},
	} {
		if got := ValidTraceparent(tc.in); got != tc.want {
			t.Errorf("ValidTraceparent(%.60q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestReplayOf(t *testing.T) {
	tests := []struct {
		value string // "": no header
		want  uint64
	}{
		{"", 0},
		{"42", 42},
		{"007", 7},
		{"18446744073709551615", 18446744073709551615},
		{"99999999999999999999", 0}, // past uint64: not a sequence
		{"-1", 0},
		{"+1", 0},
		{"4 2", 0},
		{"0x2a", 0},
		{"abc", 0},
	}
	if got := ReplayOf(nil); got != 0 {
		t.Errorf("ReplayOf(nil) = %d", got)
	}
	for _, tt := range tests {
		h := nats.Header{}
		if tt.value != "" {
			h.Set(HeaderReplayOf, tt.value)
		}
		if got := ReplayOf(h); got != tt.want {
			t.Errorf("ReplayOf(%q) = %d, want %d", tt.value, got, tt.want)
		}
	}
}
