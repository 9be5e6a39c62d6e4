package connector

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/message"
)

// ErrConfig is wrapped by the errors of New and its options.
var ErrConfig = errors.New("connector: invalid configuration")

// ErrCredentialConfig is wrapped by the errors of NewCredential.
var ErrCredentialConfig = errors.New("connector: invalid credential configuration")

// ErrNoCredential is wrapped by NewCredential's error when no credential is configured.
var ErrNoCredential = errors.New("no credential")

// Sentinels that errors.Is matches against an *Error of the same kind.
var (
	ErrBadRequest   = &Error{Kind: message.KindBadRequest}
	ErrUnauthorized = &Error{Kind: message.KindUnauthorized}
	ErrForbidden    = &Error{Kind: message.KindForbidden}
	ErrNotFound     = &Error{Kind: message.KindNotFound}
	ErrThrottled    = &Error{Kind: message.KindThrottled}
	ErrUnavailable  = &Error{Kind: message.KindUnavailable}
	ErrBadResponse  = &Error{Kind: message.KindBadResponse}
)

// Error is a failed lookup: what kind of failure, and what Defender said.
type Error struct {
	Kind       message.Kind
	HTTPStatus int           // 0 when Defender did not answer
	Code       string        // Defender's error.code, when it sent one
	Target     string        // the endpoint API's error.target (a tracking id), when it sent one
	RequestID  string        // Graph's request-id (header or error.innerError), when it sent one
	Message    string        // a short human text of our own, never Defender's free text verbatim in logic
	RetryAfter time.Duration // Defender's Retry-After, when it sent one
	Err        error         // the cause, when there is one

	final bool // retryable kind, but waiting cannot cure it (an untrusted certificate)
}

func (e *Error) Error() string {
	msg := cmp.Or(e.Message, string(e.Kind))
	switch {
	case e.HTTPStatus != 0 && e.Code != "":
		msg = fmt.Sprintf("%s (http %d, %s)", msg, e.HTTPStatus, e.Code)
	case e.HTTPStatus != 0:
		msg = fmt.Sprintf("%s (http %d)", msg, e.HTTPStatus)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches the kind sentinels: errors.Is(err, connector.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.HTTPStatus == 0 && t.Code == "" && t.Err == nil && t.Message == "" && t.Kind == e.Kind
}

// ErrorInfo is the error member of the failure result for e.
func (e *Error) ErrorInfo() message.ErrorInfo {
	return message.ErrorInfo{Kind: e.Kind, Message: e.Message, HTTPStatus: e.HTTPStatus, Code: e.Code, Target: e.Target, RequestID: e.RequestID}
}
