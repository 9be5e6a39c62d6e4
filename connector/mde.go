package connector

import (
	"encoding/json"
	"net/url"
	"unicode/utf8"
)

// mdeWire is the endpoint API: a list of hosts, perhaps in linked pages.
type mdeWire struct{}

func (mdeWire) path(alertID string) string {
	return "/api/alerts/" + url.PathEscape(alertID) + "/domains"
}

func (mdeWire) template() string { return "/api/alerts/{id}/domains" }

func (mdeWire) read(body []byte, hosts *hostSet) (next string, err *Error) {
	var p page
	if e := parsePage(body, &p); e != nil {
		return "", e
	}
	for i := range p.Value {
		hosts.add(p.Value[i].Host)
	}
	return p.NextLink, nil
}

func (mdeWire) retryAs(string) (string, bool) { return "", false }

type page struct {
	Value    []domainEntry `json:"value"`
	NextLink string        `json:"@odata.nextLink"`
}

type domainEntry struct {
	Host string `json:"host"`
}

// parsePage decodes a 2xx body into p; anything but the documented shape is bad_response.
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
