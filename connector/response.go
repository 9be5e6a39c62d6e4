package connector

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alert-domains/alert-domains/message"
)

// classify decides what an HTTP answer means. It returns nil for a 2xx,
// whose body is then parsed as domains, and the failure for any other
// status: 400 and unlisted 4xx are bad_request, 401 unauthorized, 403
// forbidden, 404 not_found, 429 throttled, 5xx unavailable, and anything
// else (1xx, 3xx, nonsense) bad_response. Defender's error.code and
// error.target are taken from a JSON error body when there is one, and
// Retry-After from a 429 or 5xx.
func classify(status int, header http.Header, body []byte) *Error {
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
		e.Kind, e.Message = message.KindForbidden, "access denied (the app needs URL.Read.All and a token for the Defender API)"
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
	e.Code, e.Target = parseErrorBody(body)
	return e
}

// maxRetryAfter bounds a Retry-After, so a nonsense value cannot overflow.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// It returns 0 when v is absent, invalid or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return maxRetryAfter
			}
			return 0
		}
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxRetryAfter)
}

// errorBody is Defender's error answer: {"error":{"code","message","target"}}.
type errorBody struct {
	Error struct {
		Code   string `json:"code"`
		Target string `json:"target"`
	} `json:"error"`
}

// parseErrorBody takes error.code and error.target from a JSON error body,
// best effort: an empty, HTML or odd body yields nothing. Values that are
// not short plain tokens are dropped, so they cannot corrupt a log line.
func parseErrorBody(body []byte) (code, target string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return "", ""
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		return "", ""
	}
	return token(eb.Error.Code, 64), token(eb.Error.Target, 128)
}

// token returns s when it is at most n bytes of printable ASCII without
// spaces, and "" otherwise.
func token(s string, n int) string {
	if len(s) > n {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return ""
		}
	}
	return s
}

// page is one 200 answer of the domains call.
type page struct {
	Value    []domainEntry `json:"value"`
	NextLink string        `json:"@odata.nextLink"`
	status   int           // the HTTP status of the answer, for errors about its content
}

type domainEntry struct {
	Host string `json:"host"`
}

// parsePage decodes a 2xx body into p: a JSON object with a "value" array
// (possibly empty) of objects whose "host" is a non-empty string, and an
// optional "@odata.nextLink" string. Anything else is bad_response.
func parsePage(body []byte, p *page) *Error {
	if !utf8.Valid(body) {
		return badResponse("answer is not valid UTF-8", nil)
	}
	if err := json.Unmarshal(body, p); err != nil {
		return badResponse("answer is not the documented JSON", err)
	}
	if p.Value == nil {
		return badResponse("answer has no value array", nil)
	}
	for i := range p.Value {
		if msg := checkHost(p.Value[i].Host); msg != "" {
			return badResponse(msg, nil)
		}
	}
	return nil
}

// checkHost returns why h is not a usable host name, or "".
func checkHost(h string) string {
	if h == "" {
		return "answer has an entry without a host"
	}
	for _, r := range h {
		switch {
		case r == utf8.RuneError:
			return "answer has a host that is not valid UTF-8"
		case r < ' ' || r == 0x7f:
			return "answer has a host with control characters"
		}
	}
	return ""
}

func badResponse(msg string, err error) *Error {
	return &Error{Kind: message.KindBadResponse, Message: msg, Err: err}
}

// parseDomains decodes one 2xx body into its hosts, in order, without
// duplicates, never nil, and its next link.
func parseDomains(body []byte) (domains []string, nextLink string, err error) {
	var p page
	if e := parsePage(body, &p); e != nil {
		return nil, "", e
	}
	var set hostSet
	for _, d := range p.Value {
		set.add(d.Host)
	}
	return set.result(), p.NextLink, nil
}

// hostSet collects hosts in order without duplicates. Small sets are
// searched linearly; a map takes over past linearLimit hosts.
type hostSet struct {
	list []string
	seen map[string]struct{}
}

const linearLimit = 32

func (s *hostSet) add(h string) {
	if s.seen != nil {
		if _, dup := s.seen[h]; dup {
			return
		}
		s.seen[h] = struct{}{}
		s.list = append(s.list, h)
		return
	}
	for _, x := range s.list {
		if x == h {
			return
		}
	}
	s.list = append(s.list, h)
	if len(s.list) > linearLimit {
		s.seen = make(map[string]struct{}, 2*len(s.list))
		for _, x := range s.list {
			s.seen[x] = struct{}{}
		}
	}
}

// result is the collected hosts, [] rather than nil when there are none.
func (s *hostSet) result() []string {
	if s.list == nil {
		return []string{}
	}
	return s.list
}
