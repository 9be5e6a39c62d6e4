package connector

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/message"
)

// errorBodies are each API's documented error body with code.
var errorBodies = map[API]func(code string) []byte{
	MDE: func(code string) []byte {
		return []byte(`{"error":{"code":"` + code + `","message":"free text","target":"3f2b8a4c-0000-4000-8000-000000000001"}}`)
	},
	Graph: func(code string) []byte {
		return []byte(`{"error":{"code":"` + code + `","message":"free text","innerError":{"date":"2026-11-27T09:14:03",` +
			`"request-id":"b7c9a0d2-0000-4000-8000-000000000002","client-request-id":"c0ffee00-0000-4000-8000-000000000003"}}}`)
	},
}

// TestClassify: both APIs' answers are judged by one table of status
// codes; the code and the tracking ID come from each API's error body.
func TestClassify(t *testing.T) {
	retryAfter := http.Header{"Retry-After": {"7"}}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		code       string // the error body's code; "" for no JSON body
		body       []byte // instead of a JSON error body
		ok         bool
		kind       message.Kind
		retryAfter time.Duration
	}{
		{name: "200", status: 200, ok: true},
		{name: "204", status: 204, ok: true},
		{name: "400 json", status: 400, code: "InvalidInput", kind: message.KindBadRequest},
		{name: "400 empty", status: 400, kind: message.KindBadRequest},
		{name: "401", status: 401, code: "Unauthorized", kind: message.KindUnauthorized},
		{name: "403", status: 403, code: "Forbidden", kind: message.KindForbidden},
		{name: "403 disabled feature", status: 403, code: "DisabledFeature", kind: message.KindForbidden},
		{name: "404 json", status: 404, code: "ResourceNotFound", kind: message.KindNotFound},
		{name: "404 empty", status: 404, kind: message.KindNotFound},
		{name: "404 html", status: 404, body: []byte("<html><body>Not Found</body></html>"), kind: message.KindNotFound},
		{name: "429 retry-after", status: 429, header: retryAfter, code: "TooManyRequests", kind: message.KindThrottled, retryAfter: 7 * time.Second},
		{name: "429 without retry-after", status: 429, kind: message.KindThrottled},
		{name: "500", status: 500, code: "InternalServerError", kind: message.KindUnavailable},
		{name: "502 html", status: 502, body: []byte("<html>Bad Gateway</html>"), kind: message.KindUnavailable},
		{name: "503 retry-after", status: 503, header: retryAfter, kind: message.KindUnavailable, retryAfter: 7 * time.Second},
		{name: "504", status: 504, kind: message.KindUnavailable},
		{name: "599", status: 599, kind: message.KindUnavailable},
		{name: "405 other 4xx", status: 405, kind: message.KindBadRequest},
		{name: "408 other 4xx", status: 408, kind: message.KindBadRequest},
		{name: "410 other 4xx", status: 410, kind: message.KindBadRequest},
		{name: "499 other 4xx", status: 499, kind: message.KindBadRequest},
		{name: "301 redirect", status: 301, kind: message.KindBadResponse},
		{name: "100", status: 100, kind: message.KindBadResponse},
		{name: "600", status: 600, kind: message.KindBadResponse},
		{name: "odd code dropped", status: 400, body: []byte(`{"error":{"code":"has space\n"}}`), kind: message.KindBadRequest},
		{name: "non-string code ignored", status: 404, body: []byte(`{"error":{"code":42}}`), kind: message.KindNotFound},
	}
	for _, api := range []API{Graph, MDE} {
		for _, tt := range tests {
			t.Run(string(api)+"/"+tt.name, func(t *testing.T) {
				h := tt.header
				if h == nil {
					h = http.Header{}
				}
				body := tt.body
				if tt.code != "" {
					body = errorBodies[api](tt.code)
				}
				e := classify(api, tt.status, h, body)
				if tt.ok {
					if e != nil {
						t.Fatalf("classify = %v, want success", e)
					}
					return
				}
				if e == nil {
					t.Fatal("classify = nil, want a failure")
				}
				if e.Kind != tt.kind || e.HTTPStatus != tt.status || e.Code != tt.code || e.RetryAfter != tt.retryAfter {
					t.Errorf("classify = {kind %s, status %d, code %q, retry-after %s}, want {%s, %d, %q, %s}",
						e.Kind, e.HTTPStatus, e.Code, e.RetryAfter, tt.kind, tt.status, tt.code, tt.retryAfter)
				}
				if !errors.Is(e, &Error{Kind: tt.kind}) {
					t.Errorf("errors.Is(%v, kind %s) = false", e, tt.kind)
				}
				// The tracking ID of each API's body: the endpoint API's
				// target, Graph's innerError request-id.
				wantTarget, wantRequestID := "", ""
				if tt.code != "" && api == MDE {
					wantTarget = "3f2b8a4c-0000-4000-8000-000000000001"
				}
				if tt.code != "" && api == Graph {
					wantRequestID = "b7c9a0d2-0000-4000-8000-000000000002"
				}
				if e.Target != wantTarget || e.RequestID != wantRequestID {
					t.Errorf("target %q, request id %q; want %q, %q", e.Target, e.RequestID, wantTarget, wantRequestID)
				}
				if strings.Contains(e.Error(), "free text") {
					t.Errorf("error %q repeats Defender's message", e.Error())
				}
			})
		}
	}
}

// TestGraphRequestID: Graph's request-id comes from the header or from
// error.innerError, whichever the answer has, and only as a plain token.
func TestGraphRequestID(t *testing.T) {
	const id = "b7c9a0d2-0000-4000-8000-000000000002"
	body := errorBodies[Graph]("NotFound")
	noInner := []byte(`{"error":{"code":"NotFound","message":"free text"}}`)
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		want   string
	}{
		{name: "header and body", header: http.Header{"Request-Id": {id}}, body: body, want: id},
		{name: "body only", body: body, want: id},
		{name: "header only", header: http.Header{"Request-Id": {id}}, body: noInner, want: id},
		{name: "header with an empty body", header: http.Header{"Request-Id": {id}}, want: id},
		{name: "neither", body: noInner},
		{name: "html body", body: []byte("<html>Not Found</html>")},
		{name: "header not a token", header: http.Header{"Request-Id": {"a b\nc"}}, body: noInner},
		{name: "header too long", header: http.Header{"Request-Id": {strings.Repeat("a", 129)}}, body: noInner},
		{name: "body value not a token", body: []byte(`{"error":{"code":"NotFound","innerError":{"request-id":"a\u0000b"}}}`)},
		{name: "lower-case innererror", body: []byte(`{"error":{"code":"NotFound","innererror":{"request-id":"` + id + `"}}}`), want: id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			e := classify(Graph, http.StatusNotFound, h, tt.body)
			if e.RequestID != tt.want {
				t.Errorf("RequestID = %q, want %q", e.RequestID, tt.want)
			}
			if info := e.ErrorInfo(); info.RequestID != tt.want {
				t.Errorf("ErrorInfo().RequestID = %q, want %q", info.RequestID, tt.want)
			}
		})
	}
}

// TestForbiddenNamesThePermission: a 403 says which application
// permission the API needs, and not the other API's.
func TestForbiddenNamesThePermission(t *testing.T) {
	tests := []struct {
		api       API
		want, not string
	}{
		{Graph, "SecurityAlert.Read.All", "URL.Read.All"},
		{MDE, "URL.Read.All", "SecurityAlert.Read.All"},
	}
	for _, tt := range tests {
		e := classify(tt.api, http.StatusForbidden, http.Header{}, errorBodies[tt.api]("Forbidden"))
		if !strings.Contains(e.Message, tt.want) || strings.Contains(e.Message, tt.not) {
			t.Errorf("%s: message %q, want it to name %s and not %s", tt.api, e.Message, tt.want, tt.not)
		}
		if tt.api.Permission() != tt.want {
			t.Errorf("%s: Permission() = %q, want %q", tt.api, tt.api.Permission(), tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"2", 2 * time.Second},
		{" 120 ", 120 * time.Second},
		{"-1", 0},
		{"1.5", 0},
		{"abc", 0},
		{"99999999999999999999999", maxRetryAfter},
		{"86401", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{"Fri, 27 Nov 2026 09:00:05 GMT", 5 * time.Second},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestMDEPage: the endpoint API's answer is read as its documented list
// of hosts.
func TestMDEPage(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
		next string
		bad  bool
	}{
		{name: "documented", body: `{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"www.example2.com"}]}`,
			want: []string{"www.example.com", "www.example2.com"}},
		{name: "order kept, duplicates dropped", body: `{"value":[{"host":"b.example"},{"host":"a.example"},{"host":"b.example"},{"host":"c.example"},{"host":"a.example"}]}`,
			want: []string{"b.example", "a.example", "c.example"}},
		{name: "empty", body: `{"value":[]}`, want: []string{}},
		{name: "extra fields", body: `{"value":[{"host":"x.example","firstSeen":"2026-01-01"}],"other":1}`, want: []string{"x.example"}},
		{name: "next link", body: `{"value":[{"host":"x.example"}],"@odata.nextLink":"https://api.securitycenter.microsoft.com/api/alerts/1/domains?$skip=1"}`,
			want: []string{"x.example"}, next: "https://api.securitycenter.microsoft.com/api/alerts/1/domains?$skip=1"},
		{name: "unicode host", body: `{"value":[{"host":"bücher.example"}]}`, want: []string{"bücher.example"}},
		{name: "not json", body: `<html>hello</html>`, bad: true},
		{name: "empty body", body: ``, bad: true},
		{name: "null", body: `null`, bad: true},
		{name: "array", body: `[{"host":"x"}]`, bad: true},
		{name: "no value", body: `{"@odata.context":"x"}`, bad: true},
		{name: "null value", body: `{"value":null}`, bad: true},
		{name: "value not array", body: `{"value":{"host":"x"}}`, bad: true},
		{name: "strings in value", body: `{"value":["x.example"]}`, bad: true},
		{name: "empty host", body: `{"value":[{"host":""}]}`, bad: true},
		{name: "missing host", body: `{"value":[{"name":"x"}]}`, bad: true},
		{name: "null host", body: `{"value":[{"host":null}]}`, bad: true},
		{name: "number host", body: `{"value":[{"host":42}]}`, bad: true},
		{name: "invalid utf-8", body: "{\"value\":[{\"host\":\"a\xffb\"}]}", bad: true},
		{name: "lone surrogate", body: `{"value":[{"host":"a\ud800b"}]}`, bad: true},
		{name: "control character", body: `{"value":[{"host":"a\nb"}]}`, bad: true},
		{name: "C1 control character", body: `{"value":[{"host":"evil\u009b2Jexample.com"}]}`, bad: true},
		{name: "right-to-left override", body: `{"value":[{"host":"evil\u202eexample.com"}]}`, bad: true},
		{name: "trailing garbage", body: `{"value":[]} x`, bad: true},
		{name: "non-string next link", body: `{"value":[],"@odata.nextLink":5}`, bad: true},
		{name: "a graph alert", body: `{"id":"da1_2","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"https://a.example/"}]}`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hosts hostSet
			next, err := mdeWire{}.read([]byte(tt.body), &hosts)
			if tt.bad {
				if err == nil || !errors.Is(err, ErrBadResponse) {
					t.Fatalf("read = %q, %v, want bad_response", hosts.result(), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if got := hosts.result(); got == nil || !reflect.DeepEqual(got, tt.want) || next != tt.next {
				t.Errorf("read = %#v, %q; want %#v, %q", got, next, tt.want, tt.next)
			}
		})
	}
}

func TestHostSetLarge(t *testing.T) {
	var s hostSet
	for range 3 {
		for j := range 100 {
			s.add(strings.Repeat("x", j+1) + ".example")
		}
	}
	got := s.result()
	if len(got) != 100 {
		t.Fatalf("len = %d, want 100", len(got))
	}
	for j, h := range got {
		if h != strings.Repeat("x", j+1)+".example" {
			t.Fatalf("host %d = %q: order lost", j, h)
		}
	}
}
