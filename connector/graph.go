package connector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"golang.org/x/net/idna"
)

// graphWire is Graph's alerts_v2: one alert object, whose evidence holds the domains.
type graphWire struct{}

func (graphWire) path(alertID string) string {
	return "/v1.0/security/alerts_v2/" + url.PathEscape(alertID)
}

func (graphWire) template() string { return "/v1.0/security/alerts_v2/{id}" }

func (graphWire) read(body []byte, hosts *hostSet) (next string, err *Error) {
	return "", readAlert(body, hosts)
}

// retryAs: Graph knows an endpoint alert without a product prefix as "da" + ID.
func (graphWire) retryAs(alertID string) (string, bool) {
	if LegacyAlertID(alertID) {
		return GraphPrefix + alertID, true
	}
	return "", false
}

// Evidence types whose members hold domains.
const (
	urlEvidence             = "#microsoft.graph.security.urlEvidence"
	analyzedMessageEvidence = "#microsoft.graph.security.analyzedMessageEvidence"
	dnsEvidence             = "#microsoft.graph.security.dnsEvidence"
)

// maxEvidence bounds the evidence items of one alert; more is bad_response.
const maxEvidence = 100_000

// typedAlertLimit is the largest body read in one typed pass, to bound memory.
const typedAlertLimit = 64 << 10

// typedAlert is the members of a Graph alert the service reads, typed.
type typedAlert struct {
	ID       *string    `json:"id"`
	Evidence []evidence `json:"evidence"`
}

// evidence is the members of one alertEvidence that hold domains.
type evidence struct {
	Type       string    `json:"@odata.type"`
	URL        *string   `json:"url"`
	URLs       []*string `json:"urls"`
	DomainName *string   `json:"domainName"`
}

func (e *evidence) addTo(hosts *hostSet) {
	switch e.Type {
	case urlEvidence:
		if e.URL != nil {
			hosts.add(hostOfURL(*e.URL))
		}
	case analyzedMessageEvidence:
		for _, u := range e.URLs {
			if u != nil {
				hosts.add(hostOfURL(*u))
			}
		}
	case dnsEvidence:
		if e.DomainName != nil {
			hosts.add(domainName(*e.DomainName))
		}
	}
}

type rawAlert struct {
	ID       *string         `json:"id"`
	Evidence json.RawMessage `json:"evidence"`
}

// graphEvidence is one alertEvidence, raw until its type is known.
type graphEvidence struct {
	Type       json.RawMessage `json:"@odata.type"`
	URL        json.RawMessage `json:"url"`
	URLs       json.RawMessage `json:"urls"`
	DomainName json.RawMessage `json:"domainName"`
}

// readAlert adds the domains of a Graph alert's evidence to hosts, in order.
func readAlert(body []byte, hosts *hostSet) *Error {
	if !utf8.Valid(body) {
		return badResponse("answer is not valid UTF-8", nil)
	}
	if len(body) <= typedAlertLimit && readTyped(body, hosts) {
		return nil
	}
	var a rawAlert
	if err := json.Unmarshal(body, &a); err != nil {
		return badResponse("answer is not the documented JSON (a Graph alert object)", err)
	}
	if a.ID == nil || *a.ID == "" {
		return badResponse("answer is not the documented JSON (a Graph alert object with an id)", nil)
	}
	return readEvidence(a.Evidence, hosts)
}

// asEncodingJSON makes json/v2 (twice as fast) read as encoding/json does: names
// matched alike, duplicates allowed, a lone surrogate's escape read as U+FFFD.
var asEncodingJSON = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true),
	jsonv2.MatchCaseInsensitiveNames(true), jsonv1.MatchCaseSensitiveDelimiter(true))

// readTyped reads a well-formed alert in one pass with json/v2; false, adding nothing, if not.
func readTyped(body []byte, hosts *hostSet) bool {
	var a typedAlert
	err := jsonv2.Unmarshal(body, &a, asEncodingJSON)
	if err != nil || a.ID == nil || *a.ID == "" {
		return false
	}
	for i := range a.Evidence {
		a.Evidence[i].addTo(hosts)
	}
	return true
}

// readEvidence reads raw evidence one item at a time, skipping unknown types.
func readEvidence(raw json.RawMessage, hosts *hostSet) *Error {
	if isNull(raw) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return badResponse("answer is not the documented JSON (its evidence is not a list)", nil)
	}
	var item json.RawMessage
	for n := 0; dec.More(); n++ {
		if n == maxEvidence {
			return badResponse(fmt.Sprintf("answer has more than %d evidence items", maxEvidence), nil)
		}
		item = item[:0]
		if err := dec.Decode(&item); err != nil {
			return badResponse("answer is not the documented JSON (a Graph alert object)", err)
		}
		var e graphEvidence
		if len(item) == 0 || item[0] != '{' || json.Unmarshal(item, &e) != nil {
			continue
		}
		if err := evidenceHosts(&e, hosts); err != nil {
			return err
		}
	}
	return nil
}

func evidenceHosts(raw *graphEvidence, hosts *hostSet) *Error {
	e := evidence{}
	if json.Unmarshal(raw.Type, &e.Type) != nil {
		return nil // no type, or not a string: not one the service knows
	}
	switch {
	case e.Type == urlEvidence && optional(raw.URL, &e.URL) != nil:
		return badResponse("answer has a urlEvidence whose url is not a string", nil)
	case e.Type == analyzedMessageEvidence && optional(raw.URLs, &e.URLs) != nil:
		return badResponse("answer has an analyzedMessageEvidence whose urls is not a list of strings", nil)
	case e.Type == dnsEvidence && optional(raw.DomainName, &e.DomainName) != nil:
		return badResponse("answer has a dnsEvidence whose domainName is not a string", nil)
	}
	e.addTo(hosts)
	return nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || bytes.Equal(raw, []byte("null")) }

// optional decodes a member that may be absent or null into v.
func optional(raw json.RawMessage, v any) error {
	if isNull(raw) {
		return nil
	}
	return json.Unmarshal(raw, v)
}

func hostOfURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return ""
	}
	return domainName(u.Hostname())
}

const maxDomain = 253

// domainName is h as a lower-case punycode domain, or "" if h is none.
func domainName(h string) string {
	h = strings.TrimSuffix(strings.TrimSpace(h), ".")
	if h == "" || len(h) > 4*maxDomain || net.ParseIP(h) != nil {
		return ""
	}
	if strings.IndexFunc(h, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return ""
		}
		h = a
	}
	h = strings.ToLower(h)
	if !IsDomain(h) {
		return ""
	}
	return h
}

// IsDomain reports whether s is a domain as a result carries it (not an IPv4).
func IsDomain(s string) bool {
	if s == "" || len(s) > maxDomain {
		return false
	}
	last := ""
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' || strings.Trim(label, labelChars) != "" {
			return false
		}
		last = label
	}
	return !isNumber(last)
}

// labelChars are the bytes of a label of a domain as a result carries it.
const labelChars = "abcdefghijklmnopqrstuvwxyz0123456789-_"

// isNumber reports whether label is an IPv4 part as the URL standard reads one.
func isNumber(label string) bool {
	if hex, ok := strings.CutPrefix(label, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return label != "" && strings.Trim(label, "0123456789") == ""
}
