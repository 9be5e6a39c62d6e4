package connector

import (
	"net/url"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
)

// mdeWire is the endpoint API: a list of hosts, perhaps in linked pages.
type mdeWire struct{}

func (mdeWire) path(alertID string) string {
	return "/api/alerts/" + url.PathEscape(alertID) + "/domains"
}

func (mdeWire) template() string { return "/api/alerts/{id}/domains" }

// read takes a page of hosts; anything but the documented shape is bad_response.
func (mdeWire) read(body []byte, hosts *hostSet) (next string, err *Error) {
	var p struct {
		Value []struct {
			Host string `json:"host"`
		} `json:"value"`
		NextLink string `json:"@odata.nextLink"`
	}
	if !utf8.Valid(body) {
		return "", badResponse("answer is not valid UTF-8", nil)
	}
	if jerr := jsonv2.Unmarshal(body, &p, asEncodingJSON); jerr != nil {
		return "", badResponse("answer is not the documented JSON", jerr)
	}
	if p.Value == nil {
		return "", badResponse("answer has no value array", nil)
	}
	for _, v := range p.Value {
		if msg := checkHost(v.Host); msg != "" {
			return "", badResponse(msg, nil)
		}
	}
	for _, v := range p.Value {
		hosts.add(v.Host)
	}
	return p.NextLink, nil
}

func (mdeWire) retryAs(string) (string, bool) { return "", false }

// checkHost returns why h is not a usable host name, or "".
func checkHost(h string) string {
	if h == "" {
		return "answer has an entry without a host"
	}
	for _, r := range h {
		switch {
		case r == utf8.RuneError:
			return "answer has a host that is not valid UTF-8"
		case r < ' ' || r == 0x7f || (r >= 0x80 && (unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp))):
			return "answer has a host with control or formatting characters"
		}
	}
	return ""
}
