package handlers

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/connector"
)

// Result statuses.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// Result is a result message of the contract: one per stored request.
type Result struct {
	Status           string     `json:"status"`
	AlertID          string     `json:"alertId,omitempty"`
	Domains          []string   `json:"domains,omitzero"`
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
	Kind       connector.Kind `json:"kind"`
	Message    string         `json:"message"`
	HTTPStatus int            `json:"httpStatus,omitempty"`
	Code       string         `json:"code,omitempty"`
	Target     string         `json:"target,omitempty"`
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

// WithRequest attaches the original request body to a failure result, so an
// operator can see what was sent.
func (r *Result) WithRequest(body []byte) *Result {
	text, truncated := requestText(body)
	r.Request, r.RequestTruncated = &text, truncated
	return r
}

func errorInfo(err error) *ErrorInfo {
	var ce *connector.Error
	if !errors.As(err, &ce) {
		return &ErrorInfo{Kind: connector.KindUnavailable, Message: err.Error()}
	}
	msg := ce.Message
	if msg == "" {
		msg = string(ce.Kind)
	}
	return &ErrorInfo{Kind: ce.Kind, Message: msg, HTTPStatus: ce.HTTPStatus, Code: ce.Code, Target: ce.Target}
}

// Subject picks the result subject for r.
func (r *Result) subject(success, failure string) string {
	if r.Status == StatusSuccess {
		return success
	}
	return failure
}

// Kind is the failure kind, or "" for a success.
func (r *Result) Kind() connector.Kind {
	if r.Error == nil {
		return ""
	}
	return r.Error.Kind
}

// ResultMsgID is the Nats-Msg-Id of the result of the request stored at seq
// in stream: the same for every delivery of that request, so the result
// stream drops a result published twice.
func ResultMsgID(stream string, seq uint64) string {
	return "result-" + stream + "-" + strconv.FormatUint(seq, 10)
}

// Message encodes r as a NATS message with the contract's headers.
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
	if r.CorrelationID != "" {
		h.Set(HeaderCorrelationID, r.CorrelationID)
	}
	if traceparent != "" {
		h.Set(HeaderTraceparent, traceparent)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}, nil
}
