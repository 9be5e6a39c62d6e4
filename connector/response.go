package connector

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/message"
)

// classify decides what an HTTP answer means, the same way for every API.
func classify(api API, status int, header http.Header, body []byte) *Error {
	if status >= 200 && status <= 299 {
		return nil
	}
	e := &Error{HTTPStatus: status}
	switch {
	case status == http.StatusBadRequest:
		e.Kind, e.Message = message.KindBadRequest, "bad request"
	case status == http.StatusUnauthorized:
		e.Kind, e.Message = message.KindUnauthorized, "access token rejected"
	case status == http.StatusForbidden:
		e.Kind, e.Message = message.KindForbidden, forbiddenMessage(api)
	case status == http.StatusNotFound:
		e.Kind, e.Message = message.KindNotFound, "alert not found"
	case status == http.StatusTooManyRequests:
		e.Kind, e.Message = message.KindThrottled, "throttled by defender"
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
	case status >= 500 && status <= 599:
		e.Kind, e.Message = message.KindUnavailable, "defender unavailable"
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
	case status >= 400 && status <= 499:
		e.Kind, e.Message = message.KindBadRequest, "request refused"
	default:
		e.Kind, e.Message = message.KindBadResponse, "unexpected http status"
	}
	e.Code, e.Target, e.RequestID = parseErrorBody(body)
	if id := token(header.Get("request-id"), 128); id != "" {
		e.RequestID = id
	}
	return e
}

func forbiddenMessage(api API) string {
	what := "Microsoft Graph"
	if api == MDE {
		what = "the Defender for Endpoint API (WindowsDefenderATP)"
	}
	return "access denied (the app needs the application permission " + api.Permission() + " with admin consent, and a token for " + what + ")"
}

// maxRetryAfter bounds a Retry-After, so a nonsense value cannot overflow.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64) // out of range: the largest number
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0
		}
		return time.Duration(min(n, uint64(maxRetryAfter/time.Second))) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxRetryAfter)
}

// errorBody is the error answer of both APIs (target: MDE; innerError: Graph).
type errorBody struct {
	Error struct {
		Code       string `json:"code"`
		Target     string `json:"target"`
		InnerError struct {
			RequestID string `json:"request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// parseErrorBody takes the code, target and request-id of a JSON error body.
func parseErrorBody(body []byte) (code, target, requestID string) {
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		return "", "", ""
	}
	return token(eb.Error.Code, 64), token(eb.Error.Target, 128), token(eb.Error.InnerError.RequestID, 128)
}

// token returns s if it is at most n bytes of printable ASCII without spaces.
func token(s string, n int) string {
	if len(s) > n || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return ""
	}
	return s
}

func badResponse(msg string, err error) *Error {
	return &Error{Kind: message.KindBadResponse, Message: msg, Err: err}
}

// hostSet collects hosts in order without duplicates.
type hostSet struct {
	list []string
	seen map[string]bool
}

// add appends h unless it is empty or held already.
func (s *hostSet) add(h string) {
	if h == "" || s.seen[h] {
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[h] = true
	s.list = append(s.list, h)
}

// result is the collected hosts, [] rather than nil when there are none.
func (s *hostSet) result() []string {
	if s.list == nil {
		return []string{}
	}
	return s.list
}
