package message

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

var testSubjects = Subjects{Request: "req", Success: "ok", Failure: "ko", Plain: "default"}

func TestSubjectsTenant(t *testing.T) {
	for _, tc := range []struct {
		subject string
		tenant  string
		ok      bool
	}{
		{"req", "", true}, {"ok", "", true}, {"ko", "", true},
		{"req.alpha", "alpha", true}, {"ok.alpha", "alpha", true}, {"ko.bravo", "bravo", true},
		{"ok.", "", false}, {"ok.alpha.x", "", false}, {"other", "", false}, {"okay", "", false}, {"", "", false},
	} {
		tenant, ok := testSubjects.Tenant(tc.subject)
		if tenant != tc.tenant || ok != tc.ok {
			t.Errorf("Tenant(%q) = %q, %v; want %q, %v", tc.subject, tenant, ok, tc.tenant, tc.ok)
		}
	}
}

func TestParseResultMsgID(t *testing.T) {
	stored := time.Unix(0, 1764234843512000123)
	for _, tc := range []struct {
		name, id string
		seq      uint64
		stored   time.Time
		ok       bool
	}{
		{"with the store time", "result-REQ-7-1764234843512000123", 7, stored, true},
		{"without a time", "result-REQ-7", 7, time.Time{}, true},
		{"another stream", "result-OTHER-7-1764234843512000123", 0, time.Time{}, false},
		{"a stream whose name starts the same", "result-REQ-A-7-1764234843512000123", 0, time.Time{}, false},
		{"sequence zero", "result-REQ-0-1764234843512000123", 0, time.Time{}, false},
		{"not a number", "result-REQ-x-1", 0, time.Time{}, false},
		{"time zero", "result-REQ-7-0", 0, time.Time{}, false},
		{"negative time", "result-REQ-7--5", 0, time.Time{}, false},
		{"empty time", "result-REQ-7-", 0, time.Time{}, false},
		// Forms that parse as numbers but are not the ID the service writes:
		// the stream's duplicate window would not drop them as copies of it.
		{"leading zero in the sequence", "result-REQ-07-1764234843512000123", 0, time.Time{}, false},
		{"plus sign in the time", "result-REQ-7-+1764234843512000123", 0, time.Time{}, false},
		{"leading zero in the time", "result-REQ-7-01764234843512000123", 0, time.Time{}, false},
		{"trailing text", "result-REQ-7-1764234843512000123-x", 0, time.Time{}, false},
		{"empty", "", 0, time.Time{}, false},
		{"the prefix only", "result-REQ-", 0, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, st, ok := ParseResultMsgID(tc.id, "REQ")
			if seq != tc.seq || !st.Equal(tc.stored) || ok != tc.ok {
				t.Errorf("ParseResultMsgID(%q) = %d, %v, %v; want %d, %v, %v", tc.id, seq, st, ok, tc.seq, tc.stored, tc.ok)
			}
		})
	}
}

func FuzzParseResultMsgID(f *testing.F) {
	f.Add("result-REQ-7-1764234843512000123", "REQ", uint64(7), int64(1764234843512000123))
	f.Add("result-REQ-7", "REQ", uint64(1), int64(0))
	f.Add("result-REQ-07-+1", "REQ", uint64(1<<64-1), int64(1))
	f.Add("result--1-1", "", uint64(2), int64(-1))
	f.Fuzz(func(t *testing.T, id, stream string, seq uint64, ns int64) {
		// Never panics; whatever it accepts is exactly an ID ResultMsgID writes.
		if s, st, ok := ParseResultMsgID(id, stream); ok {
			if s == 0 || ResultMsgID(stream, s, st) != id {
				t.Fatalf("ParseResultMsgID(%q) = %d, %v: not the ID of that request (%q)", id, s, st, ResultMsgID(stream, s, st))
			}
		}
		// Every ID ResultMsgID writes reads back.
		if seq == 0 || ns < 0 {
			return
		}
		var stored time.Time
		if ns > 0 {
			stored = time.Unix(0, ns)
		}
		s, st, ok := ParseResultMsgID(ResultMsgID(stream, seq, stored), stream)
		if !ok || s != seq || !st.Equal(stored) {
			t.Fatalf("ResultMsgID(%q, %d, %v) read back as %d, %v, %v", stream, seq, stored, s, st, ok)
		}
	})
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "alert da6374", 64, "alert da6374"},
		{"terminal escape", "\x1b]0;pwned\x07ok", 64, "\uFFFD]0;pwned\uFFFDok"},
		{"new line", "a\nb\r\tc", 64, "a\uFFFDb\uFFFD\uFFFDc"},
		{"C1 control", "a\u009bb", 64, "a\uFFFDb"},
		{"delete", "a\x7fb", 64, "a\uFFFDb"},
		{"invalid UTF-8", "a\xffb", 64, "a\uFFFDb"},
		{"bidi override", "a\u202eb", 64, "a\uFFFDb"},
		{"line separator", "a\u2028b", 64, "a\uFFFDb"},
		{"cut", "abcdef", 3, "abc…"},
		{"cut on a rune boundary", "aé", 2, "a…"},
		{"at the limit", "abc", 3, "abc"},
		{"zero limit", "abc", 0, "…"},
		{"negative limit", "abc", -1, "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Printable(tc.in, tc.max); got != tc.want {
				t.Errorf("Printable(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[31mred", "\xff\xfe", "a\u202eb", strings.Repeat("é", 40)} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit %= 1 << 12
		got := Printable(s, limit)
		if !utf8.ValidString(got) {
			t.Fatalf("Printable(%q, %d) = %q: not UTF-8", s, limit, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp) {
				t.Fatalf("Printable(%q, %d) = %q holds %U", s, limit, got, r)
			}
		}
		if len(got) > max(limit, 0)+len("…") {
			t.Fatalf("Printable(%q, %d) is %d bytes long", s, limit, len(got))
		}
	})
}

// checkCase is a stored request and a result as the service writes it for
// that request; each case of TestBelieve changes one thing.
func checkCase(subject, body string) (StoredRequest, string, string, *Result) {
	stored := time.Unix(0, 1764234843512000123)
	req := StoredRequest{Subject: subject, Data: []byte(body), Seq: 42, Stored: stored}
	return req, "ok", ResultMsgID("REQ", 42, stored), &Result{Status: StatusSuccess, AlertID: "a1", RequestSequence: 42}
}

func TestBelieve(t *testing.T) {
	tests := []struct {
		name    string
		reqSubj string
		body    string
		change  func(subject, msgID *string, res *Result)
		gone    bool // the request is no longer stored
		header  func(nats.Header)
		raw     []byte // the body stored instead of the result's JSON
		ours    bool
	}{
		{name: "the service's success", reqSubj: "req", body: "a1", ours: true},
		{name: "the service's failure", reqSubj: "req", body: "a1", ours: true,
			change: func(s, _ *string, r *Result) { *s, r.Status = "ko", StatusFailure }},
		{name: "a tenant's success", reqSubj: "req.alpha", body: "a1", ours: true,
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.alpha", "alpha" }},
		{name: "a tenant named by the body", reqSubj: "req", body: `{"alertId":"a1","tenant":"alpha"}`, ours: true,
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.alpha", "alpha" }},
		{name: "a tenant found by the alert's Entra tenant", reqSubj: "req", body: `{"id":"a1","tenantId":"6f1c2b9e"}`, ours: true,
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.alpha", "alpha" }},
		{name: "an unknown tenant's failure on the plain subject", reqSubj: "req.initech", body: "a1", ours: true,
			change: func(s, _ *string, r *Result) {
				*s, r.Status, r.Error = "ko", StatusFailure, &ErrorInfo{Kind: KindUnknownTenant}
			}},
		{name: "an invalid request's failure", reqSubj: "req", body: "../x", ours: true,
			change: func(s, _ *string, r *Result) {
				*s, r.Status, r.AlertID, r.Error = "ko", StatusFailure, "", &ErrorInfo{Kind: KindInvalidRequest}
			}},
		{name: "a request no longer stored", gone: true, ours: true,
			change: func(s, id *string, r *Result) {
				*s, *id, r.Status, r.AlertID = "ko", ResultMsgID("REQ", 42, time.Time{}), StatusFailure, ""
			}},

		{name: "message ID of another stream", reqSubj: "req", body: "a1",
			change: func(_, id *string, _ *Result) { *id = ResultMsgID("OTHER", 42, time.Unix(0, 1764234843512000123)) }},
		{name: "message ID of another request", reqSubj: "req", body: "a1",
			change: func(_, id *string, _ *Result) { *id = ResultMsgID("REQ", 43, time.Unix(0, 1764234843512000123)) }},
		{name: "message ID of a request stored at another time", reqSubj: "req", body: "a1",
			change: func(_, id *string, _ *Result) { *id = ResultMsgID("REQ", 42, time.Unix(0, 1764234843512000124)) }},
		{name: "message ID without the store time", reqSubj: "req", body: "a1",
			change: func(_, id *string, _ *Result) { *id = ResultMsgID("REQ", 42, time.Time{}) }},
		{name: "body names another request", reqSubj: "req", body: "a1",
			change: func(_, _ *string, r *Result) { r.RequestSequence = 43 }},
		{name: "another alert", reqSubj: "req", body: "a1",
			change: func(_, _ *string, r *Result) { r.AlertID = "a2" }},
		{name: "success on the failure subject", reqSubj: "req", body: "a1",
			change: func(s, _ *string, _ *Result) { *s = "ko" }},
		{name: "failure on the success subject", reqSubj: "req", body: "a1",
			change: func(_, _ *string, r *Result) { r.Status = StatusFailure }},
		{name: "no status on the failure subject", reqSubj: "req", body: "a1",
			change: func(s, _ *string, r *Result) { *s, r.Status = "ko", "" }},
		{name: "on the request subject", reqSubj: "req", body: "a1",
			change: func(s, _ *string, _ *Result) { *s = "req" }},
		{name: "on another subject", reqSubj: "req", body: "a1",
			change: func(s, _ *string, _ *Result) { *s = "elsewhere" }},
		{name: "another tenant's subject", reqSubj: "req.alpha", body: "a1",
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.bravo", "bravo" }},
		{name: "a tenant's request answered on the plain subject", reqSubj: "req.alpha", body: "a1",
			change: func(_, _ *string, r *Result) { r.Tenant = "alpha" }},
		{name: "a tenant on a request that names none", reqSubj: "req", body: "a1",
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.alpha", "alpha" }},
		{name: "a body tenant that its subject does not name", reqSubj: "req.alpha", body: "a1",
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.alpha", "bravo" }},
		{name: "a Tenant header that its subject does not name", reqSubj: "req.alpha", body: "a1",
			change: func(s, _ *string, r *Result) { *s, r.Tenant = "ok.alpha", "alpha" },
			header: func(h nats.Header) { h.Set(HeaderTenant, "bravo") }},
		{name: "a Result-Status that its subject does not say", reqSubj: "req", body: "a1",
			header: func(h nats.Header) { h.Set(HeaderResultStatus, StatusFailure) }},
		{name: "the plain tenant on the plain subjects", reqSubj: "req", body: "a1", ours: true,
			change: func(_, _ *string, r *Result) { r.Tenant = "default" }},
		{name: "another tenant in the body on the plain subjects", reqSubj: "req", body: "a1",
			change: func(_, _ *string, r *Result) { r.Tenant = "bravo" }},
		{name: "a body that is not JSON", reqSubj: "req", body: "a1", raw: []byte("alertId: a1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, subject, msgID, res := checkCase(tt.reqSubj, tt.body)
			if tt.change != nil {
				tt.change(&subject, &msgID, res)
			}
			if tt.gone {
				req.Data, req.Stored = nil, time.Time{}
			}
			msg, err := res.Message(subject, msgID, "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != nil {
				tt.header(msg.Header)
			}
			if tt.raw != nil {
				msg.Data = tt.raw
			}
			got, err := testSubjects.Believe("REQ", req, subject, msg.Header, msg.Data)
			if tt.ours && (err != nil || got.AlertID != res.AlertID) {
				t.Errorf("Believe: %v, want the service's result", err)
			}
			var why *NotOurs
			if !tt.ours && (!errors.Is(err, ErrNotOurs) || !errors.As(err, &why) || !slices.Contains(Reasons, why.Reason)) {
				t.Errorf("Believe: %v, want a NotOurs with a reason", err)
			}
		})
	}
}
