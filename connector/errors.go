package connector

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies why a lookup failed. The values are the error.kind strings
// of a failure result.
type Kind string

// The failure kinds of a result.
const (
	KindInvalidRequest Kind = "invalid_request" // the request is not one the service accepts
	KindBadRequest     Kind = "bad_request"     // Defender answered 400 or another unlisted 4xx
	KindUnauthorized   Kind = "unauthorized"    // no token, or 401 after one fresh token
	KindForbidden      Kind = "forbidden"       // Defender answered 403
	KindNotFound       Kind = "not_found"       // Defender answered 404
	KindThrottled      Kind = "throttled"       // 429 until the retry budget ran out
	KindUnavailable    Kind = "unavailable"     // 5xx, time-outs, network errors until the budget ran out
	KindBadResponse    Kind = "bad_response"    // a 2xx that is not the documented JSON, or too large
	KindUnknownTenant  Kind = "unknown_tenant"  // the request names a tenant that is not configured
)

// Retryable reports whether an answer of this kind is worth asking again.
func (k Kind) Retryable() bool { return k == KindThrottled || k == KindUnavailable }

// ErrConfig is wrapped by the errors of New and its options: a client that
// cannot be built from the configuration it was given.
var ErrConfig = errors.New("connector: invalid configuration")

// ErrCredentialConfig is wrapped by the errors of NewCredential: a missing
// or contradictory credential setting.
var ErrCredentialConfig = errors.New("connector: invalid credential configuration")

// Sentinels matched with errors.Is against an *Error of the same kind.
var (
	ErrInvalidRequest = &Error{Kind: KindInvalidRequest}
	ErrBadRequest     = &Error{Kind: KindBadRequest}
	ErrUnauthorized   = &Error{Kind: KindUnauthorized}
	ErrForbidden      = &Error{Kind: KindForbidden}
	ErrNotFound       = &Error{Kind: KindNotFound}
	ErrThrottled      = &Error{Kind: KindThrottled}
	ErrUnavailable    = &Error{Kind: KindUnavailable}
	ErrBadResponse    = &Error{Kind: KindBadResponse}
	ErrUnknownTenant  = &Error{Kind: KindUnknownTenant}
)

// Error is a failed lookup: what kind of failure, and what Defender said.
// It never holds a token or a secret.
type Error struct {
	Kind       Kind
	HTTPStatus int           // 0 when Defender did not answer
	Code       string        // Defender's error.code, when it sent one
	Target     string        // Defender's error.target (a tracking id), when it sent one
	Message    string        // a short human text of our own, never Defender's free text verbatim in logic
	RetryAfter time.Duration // Defender's Retry-After, when it sent one
	Err        error         // the cause, when there is one

	// final: a failure of a retryable kind that waiting cannot cure (an
	// untrusted certificate), so the lookup is not retried.
	final bool
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = string(e.Kind)
	}
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

// KindOf returns the kind of err: the kind of the *Error it wraps, or
// unavailable for any other error (a lookup that failed for a reason the
// connector did not classify is treated as temporary).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnavailable
}
