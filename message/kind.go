package message

import (
	"cmp"
	"errors"
)

// Kind classifies why a request has a failure result.
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

// Error is a failure the service finds without asking Defender.
type Error struct {
	Kind    Kind
	Message string // a short human text, the error.message of the result
	Err     error  // the cause, when there is one
}

func (e *Error) Error() string {
	msg := cmp.Or(e.Message, string(e.Kind))
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorInfo is the error member a failure result with e as its reason has.
func (e *Error) ErrorInfo() ErrorInfo { return ErrorInfo{Kind: e.Kind, Message: e.Message} }

// reason is an error that knows its failure's error member (*Error, *connector.Error).
type reason interface {
	error
	ErrorInfo() ErrorInfo
}

// KindOf returns the failure kind err wraps, or unavailable (temporary) if none.
func KindOf(err error) Kind {
	if r, ok := errors.AsType[reason](err); ok {
		return r.ErrorInfo().Kind
	}
	return KindUnavailable
}
