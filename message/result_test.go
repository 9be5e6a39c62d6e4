package message

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

var testNow = time.Date(2026, 11, 27, 9, 14, 3, 512_000_000, time.UTC)

// describedError is an error from another package that describes its
// failure result, as a *connector.Error does.
type describedError struct{ info ErrorInfo }

func (e *describedError) Error() string        { return "described" }
func (e *describedError) ErrorInfo() ErrorInfo { return e.info }

// The wire format of results, byte for byte: the JSON members, their order
// and the headers are what subscribers parse.
func TestResultWireFormat(t *testing.T) {
	tests := []struct {
		name     string
		res      *Result
		wantBody string
		wantHdr  map[string]string
	}{
		{
			name:     "success",
			res:      Success("da1_2", []string{"a.example", "b.example"}, 1, false, testNow),
			wantBody: `{"status":"success","alertId":"da1_2","domains":["a.example","b.example"],"attempts":1,"cached":false,"completedAt":"2026-11-27T09:14:03.512Z"}`,
			wantHdr:  map[string]string{"Content-Type": "application/json", "Nats-Msg-Id": "result-REQ-7", "Result-Status": "success", "Alert-Id": "da1_2"},
		},
		{
			name:     "success without domains",
			res:      Success("da1_2", nil, 0, true, testNow),
			wantBody: `{"status":"success","alertId":"da1_2","domains":[],"attempts":0,"cached":true,"completedAt":"2026-11-27T09:14:03.512Z"}`,
			wantHdr:  map[string]string{"Result-Status": "success"},
		},
		{
			name: "failure from another package's error",
			res: func() *Result {
				r := Failure("da1_2", &describedError{ErrorInfo{Kind: KindNotFound, Message: "alert not found", HTTPStatus: 404, Code: "ResourceNotFound", Target: "t-1"}}, 2, testNow)
				r.Tenant, r.CorrelationID, r.RequestSequence, r.ReplayOf, r.Delivery = "contoso", "case-42", 7, 3, 1
				return r
			}(),
			wantBody: `{"status":"failure","tenant":"contoso","alertId":"da1_2","error":{"kind":"not_found","message":"alert not found","httpStatus":404,"code":"ResourceNotFound","target":"t-1"},"attempts":2,"correlationId":"case-42","requestSequence":7,"replayOf":3,"delivery":1,"completedAt":"2026-11-27T09:14:03.512Z"}`,
			wantHdr:  map[string]string{"Result-Status": "failure", "Tenant": "contoso", "Correlation-Id": "case-42"},
		},
		{
			name:     "invalid request with its body",
			res:      Failure("", &Error{Kind: KindInvalidRequest, Message: "request body is empty", Err: ErrInvalidRequest}, 0, testNow).WithRequest([]byte(" ")),
			wantBody: `{"status":"failure","error":{"kind":"invalid_request","message":"request body is empty"},"attempts":0,"request":" ","completedAt":"2026-11-27T09:14:03.512Z"}`,
			wantHdr:  map[string]string{"Result-Status": "failure", "Alert-Id": ""},
		},
		{
			name:     "unclassified error",
			res:      Failure("a", errors.New("connection reset"), 5, testNow),
			wantBody: `{"status":"failure","alertId":"a","error":{"kind":"unavailable","message":"connection reset"},"attempts":5,"completedAt":"2026-11-27T09:14:03.512Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := tt.res.Message("results", "result-REQ-7", "")
			if err != nil {
				t.Fatal(err)
			}
			if string(msg.Data) != tt.wantBody {
				t.Errorf("body\n got %s\nwant %s", msg.Data, tt.wantBody)
			}
			for k, v := range tt.wantHdr {
				if got := msg.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestResultMessageBoundsHeaders(t *testing.T) {
	r := Success("a", nil, 1, false, testNow)
	r.CorrelationID = strings.Repeat("c", 1000)
	msg, err := r.Message("results", "id", "not a traceparent")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(msg.Header.Get(HeaderCorrelationID)); got != maxCorrelationID {
		t.Errorf("correlation header is %d bytes, want %d", got, maxCorrelationID)
	}
	if msg.Header.Get(HeaderTraceparent) != "" {
		t.Errorf("invalid traceparent passed on")
	}
	valid := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if msg, _ = r.Message("results", "id", valid); msg.Header.Get(HeaderTraceparent) != valid {
		t.Errorf("valid traceparent dropped")
	}
}

func TestTooLargeKeepsIdentity(t *testing.T) {
	r := Success("a", []string{strings.Repeat("d", 100)}, 2, false, testNow)
	r.Tenant, r.CorrelationID, r.RequestSequence, r.ReplayOf, r.Delivery = "contoso", "c", 7, 3, 2
	msg, err := r.Message(r.Subject("ok", "failed"), "id", "")
	if err != nil || msg.Subject != "ok" {
		t.Fatalf("message: %v, subject %q", err, msg.Subject)
	}
	f := r.TooLarge(MessageSize(msg), 64, []byte("a"), testNow)
	if f.Kind() != KindBadResponse || f.Attempts != 2 || f.Tenant != "contoso" || f.CorrelationID != "c" ||
		f.RequestSequence != 7 || f.ReplayOf != 3 || f.Delivery != 2 || f.Request == nil || *f.Request != "a" {
		t.Errorf("TooLarge = %+v", f)
	}
	if f.Subject("ok", "failed") != "failed" {
		t.Errorf("a failure goes to the success subject")
	}
}

func TestMessageSize(t *testing.T) {
	msg := &nats.Msg{Data: []byte("12345")}
	if got := MessageSize(msg); got != 5 {
		t.Errorf("without headers: %d, want 5", got)
	}
	msg.Header = nats.Header{"Ab": {"cd"}}
	// NATS/1.0\r\n + "Ab: cd\r\n" + \r\n
	if got, want := MessageSize(msg), 5+10+8+2; got != want {
		t.Errorf("with a header: %d, want %d", got, want)
	}
}

func TestIDs(t *testing.T) {
	stored := time.Unix(0, 1764234843512000000)
	if got := ResultMsgID("REQ", 7, stored); got != "result-REQ-7-1764234843512000000" {
		t.Errorf("ResultMsgID = %q", got)
	}
	if got := ResultMsgID("REQ", 7, time.Time{}); got != "result-REQ-7" {
		t.Errorf("ResultMsgID without a time = %q", got)
	}
}

func TestReplayOf(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  uint64
	}{
		{"", 0}, {"42", 42}, {"18446744073709551615", 1<<64 - 1},
		{"18446744073709551616", 0}, {"-1", 0}, {"+1", 0}, {"0x10", 0}, {"1_000", 0}, {" 1", 0}, {"abc", 0},
	} {
		if got := ReplayOf(nats.Header{HeaderReplayOf: {tc.value}}); got != tc.want {
			t.Errorf("ReplayOf(%q) = %d, want %d", tc.value, got, tc.want)
		}
	}
	if ReplayOf(nil) != 0 {
		t.Errorf("ReplayOf(nil) != 0")
	}
}
