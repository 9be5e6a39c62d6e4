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

func TestClassify(t *testing.T) {
	jsonErr := func(code string) []byte {
		return []byte(`{"error":{"code":"` + code + `","message":"free text","target":"3f2b8a4c-0000-4000-8000-000000000001"}}`)
	}
	retryAfter := http.Header{"Retry-After": {"7"}}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       []byte
		ok         bool
		kind       message.Kind
		code       string
		retryAfter time.Duration
	}{
		{name: "200", status: 200, ok: true},
		{name: "204", status: 204, ok: true},
		{name: "400 json", status: 400, body: jsonErr("InvalidInput"), kind: message.KindBadRequest, code: "InvalidInput"},
		{name: "400 empty", status: 400, kind: message.KindBadRequest},
		{name: "401", status: 401, body: jsonErr("Unauthorized"), kind: message.KindUnauthorized, code: "Unauthorized"},
		{name: "403", status: 403, body: jsonErr("Forbidden"), kind: message.KindForbidden, code: "Forbidden"},
		{name: "403 disabled feature", status: 403, body: jsonErr("DisabledFeature"), kind: message.KindForbidden, code: "DisabledFeature"},
		{name: "404 json", status: 404, body: jsonErr("ResourceNotFound"), kind: message.KindNotFound, code: "ResourceNotFound"},
		{name: "404 empty", status: 404, kind: message.KindNotFound},
		{name: "404 html", status: 404, body: []byte("<html><body>Not Found</body></html>"), kind: message.KindNotFound},
		{name: "429 retry-after", status: 429, header: retryAfter, body: jsonErr("TooManyRequests"), kind: message.KindThrottled, code: "TooManyRequests", retryAfter: 7 * time.Second},
		{name: "429 without retry-after", status: 429, kind: message.KindThrottled},
		{name: "500", status: 500, body: jsonErr("InternalServerError"), kind: message.KindUnavailable, code: "InternalServerError"},
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			e := classify(tt.status, h, tt.body)
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
			if tt.code != "" && e.Target == "" {
				t.Error("target not taken from the error body")
			}
			if strings.Contains(e.Error(), "free text") {
				t.Errorf("error %q repeats Defender's message", e.Error())
			}
		})
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

func TestParseDomains(t *testing.T) {
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
		{name: "trailing garbage", body: `{"value":[]} x`, bad: true},
		{name: "non-string next link", body: `{"value":[],"@odata.nextLink":5}`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := parseDomains([]byte(tt.body))
			if tt.bad {
				if !errors.Is(err, ErrBadResponse) {
					t.Fatalf("parseDomains = %q, %v, want bad_response", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDomains: %v", err)
			}
			if got == nil || !reflect.DeepEqual(got, tt.want) || next != tt.next {
				t.Errorf("parseDomains = %#v, %q, want %#v, %q", got, next, tt.want, tt.next)
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
