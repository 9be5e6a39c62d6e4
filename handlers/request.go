package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/connector"
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

// ReplayOf is the stream sequence that the Replay-Of header of h names (the
// original request a replay copies), or 0 when h has none or it is not a
// sequence. It says what a publisher claims, not that replay published the
// message.
func ReplayOf(h nats.Header) uint64 {
	n, err := strconv.ParseUint(h.Get(HeaderReplayOf), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// MaxRequestBytes is the largest request body the service reads as a
// request; larger bodies are answered with an invalid_request failure.
const MaxRequestBytes = 64 << 10

// maxCorrelationID bounds the correlation ID copied into results and headers.
const maxCorrelationID = 256

// Request is a decoded request message.
type Request struct {
	AlertID       string
	CorrelationID string
	// Tenant is the string "tenant" field of a JSON body; EntraTenantID the
	// "tenantId" of an alert object (the Entra tenant it belongs to).
	Tenant        string
	EntraTenantID string
}

// ErrInvalidRequest is wrapped by every decoding error.
var ErrInvalidRequest = errors.New("invalid request")

func invalidf(msg string) error {
	return &connector.Error{Kind: connector.KindInvalidRequest, Message: msg, Err: ErrInvalidRequest}
}

// Decode reads a request body in any of the three forms of the contract: the
// alert ID as plain text, {"alertId": ..., "correlationId": ...}, or a
// Defender alert object whose "id" is the alert ID. A JSON body may name its
// tenant with a string "tenant" field; an alert object's string "tenantId"
// is kept as the Entra tenant it names. The Correlation-Id header
// is used when the body has none. The error, of kind invalid_request, says
// what is wrong; the request is returned with whatever could be read.
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
		if err := connector.ValidateAlertID(id); err != nil {
			return req, invalidf("alert ID is not 1 to 128 characters of A-Z a-z 0-9 _ -")
		}
		req.AlertID = id
		return req, nil
	}
	var obj struct {
		AlertID       json.RawMessage `json:"alertId"`
		ID            json.RawMessage `json:"id"`
		CorrelationID json.RawMessage `json:"correlationId"`
		Tenant        json.RawMessage `json:"tenant"`
		TenantID      json.RawMessage `json:"tenantId"`
	}
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return req, invalidf("request body is not valid JSON")
	}
	if t, ok := jsonString(obj.Tenant); ok {
		req.Tenant = t
	} else if present(obj.Tenant) {
		return req, invalidf("tenant is not a string")
	}
	if id, ok := jsonString(obj.TenantID); ok && len(id) <= maxCorrelationID {
		req.EntraTenantID = id
	}
	if cid, ok := jsonString(obj.CorrelationID); ok {
		if c := cleanCorrelationID(cid); c != "" {
			req.CorrelationID = c
		}
	} else if present(obj.CorrelationID) {
		return req, invalidf("correlationId is not a string")
	}
	raw, field := obj.AlertID, "alertId"
	if !present(raw) {
		raw, field = obj.ID, "id"
	}
	if !present(raw) {
		return req, invalidf("request object has no alertId or id")
	}
	id, ok := jsonString(raw)
	if !ok {
		return req, invalidf(field + " is not a string")
	}
	if err := connector.ValidateAlertID(id); err != nil {
		return req, invalidf(field + " is not 1 to 128 characters of A-Z a-z 0-9 _ -")
	}
	req.AlertID = id
	return req, nil
}

// present reports whether a JSON member was given and is not null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// cleanCorrelationID keeps a correlation ID printable and bounded: it is
// copied into a NATS header, where control characters would break the
// message.
func cleanCorrelationID(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxCorrelationID {
		s = s[:maxCorrelationID]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// ValidTraceparent reports whether s is a W3C trace context traceparent of
// version 00 as the specification writes it: 55 characters,
// version-traceid-parentid-flags in lower-case hex, neither ID all zeros.
// Only such a value is passed on to a result: anything else a publisher put
// in the header (it may be up to 64 KiB) is dropped.
func ValidTraceparent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, traceID, parentID, flags := s[:2], s[3:35], s[36:52], s[53:]
	for _, part := range []string{version, traceID, parentID, flags} {
		for _, c := range []byte(part) {
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return version != "ff" &&
		strings.Trim(traceID, "0") != "" && strings.Trim(parentID, "0") != ""
}

// requestText is the original body as text for a failure result: invalid
// UTF-8 replaced by U+FFFD, then cut at 4 KiB on a rune boundary.
func requestText(body []byte) (text string, truncated bool) {
	const limit = 4 << 10
	// Each byte becomes at most 3 bytes of text, so 4 KiB of text never needs
	// more than 4 KiB of body.
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
		cut := limit
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text, truncated = text[:cut], true
	}
	return text, truncated
}
