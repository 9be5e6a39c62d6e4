package message

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Result statuses.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// Result is a result message of the contract: one per stored request.
type Result struct {
	Status           string     `json:"status"`
	Tenant           string     `json:"tenant,omitempty"`
	AlertID          string     `json:"alertId,omitempty"`
	Domains          []string   `json:"domains,omitzero"`
	API              string     `json:"api,omitempty"`
	GraphAlertID     string     `json:"graphAlertId,omitempty"`
	Error            *ErrorInfo `json:"error,omitempty"`
	Attempts         int        `json:"attempts"`
	Cached           *bool      `json:"cached,omitempty"`
	Coalesced        bool       `json:"coalesced,omitempty"`
	CorrelationID    string     `json:"correlationId,omitempty"`
	RequestSequence  uint64     `json:"requestSequence,omitempty"`
	Request          *string    `json:"request,omitempty"`
	RequestTruncated bool       `json:"requestTruncated,omitempty"`
	ReplayOf         uint64     `json:"replayOf,omitempty"`
	Delivery         uint64     `json:"delivery,omitempty"`
	CompletedAt      string     `json:"completedAt"`
}

// ErrorInfo is the error member of a failure result.
type ErrorInfo struct {
	Kind       Kind   `json:"kind"`
	Message    string `json:"message"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	Code       string `json:"code,omitempty"`
	Target     string `json:"target,omitempty"`
	RequestID  string `json:"requestId,omitempty"` // Graph's request-id, which Microsoft support asks for
}

// TimeFormat is the format of completedAt: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Success builds a success result.
func Success(alertID string, domains []string, attempts int, cached bool, now time.Time) *Result {
	if domains == nil {
		domains = []string{}
	}
	return &Result{
		Status:      StatusSuccess,
		AlertID:     alertID,
		Domains:     domains,
		Attempts:    attempts,
		Cached:      &cached,
		CompletedAt: now.UTC().Format(TimeFormat),
	}
}

// Failure builds a failure result from a lookup or decoding error.
func Failure(alertID string, err error, attempts int, now time.Time) *Result {
	return &Result{
		Status:      StatusFailure,
		AlertID:     alertID,
		Error:       errorInfo(err),
		Attempts:    attempts,
		CompletedAt: now.UTC().Format(TimeFormat),
	}
}

// WithRequest attaches the original request body to a failure result.
func (r *Result) WithRequest(body []byte) *Result {
	text, truncated := requestText(body)
	r.Request, r.RequestTruncated = &text, truncated
	return r
}

func errorInfo(err error) *ErrorInfo {
	r, ok := errors.AsType[reason](err)
	if !ok {
		return &ErrorInfo{Kind: KindUnavailable, Message: Cut(err.Error(), maxErrorText)}
	}
	info := r.ErrorInfo()
	info.Message, info.Code, info.Target = Cut(cmp.Or(info.Message, string(info.Kind)), maxErrorText), Cut(info.Code, maxErrorText), Cut(info.Target, maxErrorText)
	info.RequestID = Cut(info.RequestID, maxErrorText)
	return &info
}

// maxErrorText bounds each text of a result's error member.
const maxErrorText = 1 << 10

// MaxAttrBytes bounds a span attribute whose value a publisher of requests chose.
const MaxAttrBytes = 256

// Cut is s cut at limit bytes, on a rune boundary.
func Cut(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	return s[:limit]
}

// Subject picks the result subject for r.
func (r *Result) Subject(success, failure string) string {
	if r.Status == StatusSuccess {
		return success
	}
	return failure
}

// Kind is the failure kind, or "" for a success.
func (r *Result) Kind() Kind {
	if r == nil || r.Error == nil {
		return ""
	}
	return r.Error.Kind
}

// Message encodes r as a NATS message with the contract's headers, each
// copied header bounded so that no request can make its result unstorable.
func (r *Result) Message(subject, msgID, traceparent string) (*nats.Msg, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	h := nats.Header{}
	h.Set(HeaderContentType, "application/json")
	h.Set(HeaderMsgID, msgID)
	h.Set(HeaderResultStatus, r.Status)
	if r.AlertID != "" {
		h.Set(HeaderAlertID, r.AlertID)
	}
	if r.Tenant != "" {
		h.Set(HeaderTenant, r.Tenant)
	}
	if r.CorrelationID != "" {
		h.Set(HeaderCorrelationID, Cut(r.CorrelationID, maxCorrelationID))
	}
	if ValidTraceparent(traceparent) {
		h.Set(HeaderTraceparent, traceparent)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}, nil
}

// MessageSize is the size of msg, headers included, as max_payload counts it.
func MessageSize(msg *nats.Msg) int { return msg.Size() - len(msg.Subject) - len(msg.Reply) }

// DefaultMaxResultBytes is nats-server's default max_payload.
const DefaultMaxResultBytes = 1 << 20

// TooLarge is the storable failure that replaces r when its message is too large.
func (r *Result) TooLarge(size, limit int, body []byte, now time.Time) *Result {
	reason := &Error{
		Kind:    KindBadResponse,
		Message: fmt.Sprintf("answer too large for one result message: %d domains in %d bytes, the limit is %d bytes", len(r.Domains), size, limit),
	}
	f := Failure(r.AlertID, reason, r.Attempts, now).WithRequest(body)
	f.CorrelationID, f.RequestSequence, f.ReplayOf, f.Delivery = r.CorrelationID, r.RequestSequence, r.ReplayOf, r.Delivery
	f.Tenant, f.API = r.Tenant, r.API
	return f
}
