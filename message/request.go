package message

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
)

// Headers the service reads from requests and writes on results.
const (
	HeaderMsgID         = nats.MsgIdHdr // "Nats-Msg-Id"
	HeaderCorrelationID = "Correlation-Id"
	HeaderTraceparent   = "traceparent"
	HeaderAlertID       = "Alert-Id"
	HeaderResultStatus  = "Result-Status"
	HeaderReplayOf      = "Replay-Of"
	HeaderContentType   = "Content-Type"
	HeaderTenant        = "Tenant"
)

// MaxRequestBytes is the largest request body read; larger is invalid_request.
const MaxRequestBytes = 64 << 10

// maxCorrelationID bounds the correlation ID copied into results and headers.
const maxCorrelationID = 256

// Request is a decoded request message.
type Request struct {
	AlertID       string
	CorrelationID string
	// Tenant is a JSON body's "tenant"; EntraTenantID an alert object's "tenantId".
	Tenant        string
	EntraTenantID string
}

// ErrInvalidRequest is wrapped by every decoding error.
var ErrInvalidRequest = errors.New("invalid request")

func invalidf(msg string) error {
	return &Error{Kind: KindInvalidRequest, Message: msg, Err: ErrInvalidRequest}
}

// Decode reads a request body: a plain alert ID, {"alertId": ...}, or an
// alert object. The error is invalid_request; the request holds what was read.
func Decode(body []byte, header nats.Header) (Request, error) {
	var req Request
	if header != nil {
		req.CorrelationID = cleanCorrelationID(header.Get(HeaderCorrelationID))
	}
	if len(body) > MaxRequestBytes {
		return req, invalidf("request body is larger than 64 KiB")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return req, invalidf("request body is empty")
	}
	if trimmed[0] != '{' {
		if trimmed[0] == '[' || trimmed[0] == '"' {
			return req, invalidf("request body is JSON but not an object")
		}
		id := string(trimmed)
		if err := ValidateAlertID(id); err != nil {
			return req, invalidf("alert ID is not 1 to 128 characters of A-Z a-z 0-9 _ -")
		}
		req.AlertID = id
		return req, nil
	}
	err := decodeObject(trimmed, &req)
	return req, err
}

func decodeObject(body []byte, req *Request) error {
	if !json.Valid(body) {
		return invalidf("request body is not valid JSON")
	}
	var m members
	if dup := m.read(body); dup != "" {
		return invalidf(dup + " is given twice")
	}
	var ok bool
	if req.Tenant, ok = jsonString(m[memberTenant]); !ok && present(m[memberTenant]) {
		return invalidf("tenant is not a string")
	}
	if req.EntraTenantID, ok = jsonString(m[memberTenantID]); !ok && present(m[memberTenantID]) {
		return invalidf("tenantId is not a string")
	}
	cid, ok := jsonString(m[memberCorrelationID])
	if !ok && present(m[memberCorrelationID]) {
		return invalidf("correlationId is not a string")
	}
	req.CorrelationID = cmp.Or(cleanCorrelationID(cid), req.CorrelationID) // the body's, else the header's
	raw, field := m[memberAlertID], "alertId"
	if !present(raw) {
		raw, field = m[memberID], "id"
	}
	if !present(raw) {
		return invalidf("request object has no alertId or id")
	}
	id, ok := jsonString(raw)
	if !ok {
		return invalidf(field + " is not a string")
	}
	if err := ValidateAlertID(id); err != nil {
		return invalidf(field + " is not 1 to 128 characters of A-Z a-z 0-9 _ -")
	}
	req.AlertID = id
	return nil
}

// The members of a request object that Decode reads, by exact key.
const (
	memberAlertID = iota
	memberID
	memberCorrelationID
	memberTenant
	memberTenantID
)

var memberKeys = [...]string{"alertId", "id", "correlationId", "tenant", "tenantId"}

// members are the raw values of the members Decode reads.
type members [len(memberKeys)][]byte

// read keeps the members of object b, valid JSON, named in memberKeys;
// duplicate is a key given twice.
func (m *members) read(b []byte) (duplicate string) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if _, err := dec.ReadToken(); err != nil { // '{'
		return ""
	}
	for dec.PeekKind() == '"' {
		key, _ := dec.ReadToken()
		name := key.String()
		value, err := dec.ReadValue()
		if err != nil {
			return ""
		}
		k := slices.Index(memberKeys[:], name)
		switch {
		case k < 0:
		case m[k] != nil:
			return name
		default:
			end := dec.InputOffset()
			m[k] = b[end-int64(len(value)) : end]
		}
	}
	return ""
}

func present(raw []byte) bool { return len(raw) > 0 && !bytes.Equal(raw, []byte("null")) }

func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if plain := raw[1 : len(raw)-1]; bytes.IndexByte(plain, '\\') < 0 && utf8.Valid(plain) {
		return string(plain), true // what encoding/json makes of it, without its reflection
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// cleanCorrelationID keeps a correlation ID printable and bounded for a header.
func cleanCorrelationID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ToValidUTF8(s[:min(len(s), maxCorrelationID)], "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// ValidTraceparent reports whether s is a W3C version 00 traceparent.
func ValidTraceparent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, traceID, parentID, flags := s[:2], s[3:35], s[36:52], s[53:]
	for _, part := range []string{version, traceID, parentID, flags} {
		if strings.Trim(part, "0123456789abcdef") != "" { // lower-case hex only
			return false
		}
	}
	return version != "ff" &&
		strings.Trim(traceID, "0") != "" && strings.Trim(parentID, "0") != ""
}

// requestText is the body as valid UTF-8 text, cut at 4 KiB.
func requestText(body []byte) (text string, truncated bool) {
	const limit = 4 << 10
	// A byte becomes at most 3 bytes of text.
	if len(body) > limit {
		body, truncated = body[:limit], true
		// Do not let the cut split the last rune.
		for i := len(body) - 1; i >= 0 && i >= len(body)-utf8.UTFMax; i-- {
			if utf8.RuneStart(body[i]) {
				if !utf8.FullRune(body[i:]) {
					body = body[:i]
				}
				break
			}
		}
	}
	text = strings.ToValidUTF8(string(body), "\uFFFD")
	if len(text) > limit {
		text, truncated = Cut(text, limit), true
	}
	return text, truncated
}
