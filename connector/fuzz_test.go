package connector

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alert-domains/alert-domains/message"
)

// FuzzMDEPage: whatever the endpoint API answers, reading it never panics,
// fails only as bad_response, and yields distinct non-empty UTF-8 hosts.
func FuzzMDEPage(f *testing.F) {
	f.Add([]byte(`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"www.example2.com"}]}`))
	f.Add([]byte(`{"value":[]}`))
	f.Add([]byte(`{"value":[{"host":"a"},{"host":"a"}],"@odata.nextLink":"https://x/y"}`))
	f.Add([]byte(`{"value":[{"host":"a\ud800"}]}`))
	f.Add([]byte("{\"value\":[{\"host\":\"\xff\"}]}"))
	f.Add([]byte(`<html></html>`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var hosts hostSet
		_, err := mdeWire{}.read(body, &hosts)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error of kind %s, want bad_response: %v", message.KindOf(err), err)
			}
			return
		}
		domains := hosts.result()
		if domains == nil {
			t.Fatal("nil domains on success")
		}
		// The one-pass typed read, when it takes the body, reads what the
		// item-by-item read does.
		var typed hostSet
		if readTyped(body, &typed) {
			var a rawAlert
			var items hostSet
			if json.Unmarshal(body, &a) != nil || readEvidence(a.Evidence, &items) != nil || !slices.Equal(typed.result(), items.result()) {
				t.Fatalf("typed read %q, item by item %q", typed.result(), items.result())
			}
		}
		seen := map[string]bool{}
		for _, d := range domains {
			if d == "" || !utf8.ValidString(d) || strings.ContainsRune(d, utf8.RuneError) {
				t.Fatalf("bad host %q accepted", d)
			}
			if seen[d] {
				t.Fatalf("duplicate host %q", d)
			}
			seen[d] = true
		}
	})
}

// FuzzGraphAlert: whatever Graph answers, reading it never panics, fails
// only as bad_response, and yields distinct domains as a result carries
// them: IsDomain, lower case, no port, user info, path or trailing dot,
// and never an IP address.
func FuzzGraphAlert(f *testing.F) {
	docs, err := os.ReadFile("testdata/graph/docs-example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(docs)
	every, err := os.ReadFile("testdata/graph/every-evidence-type.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(every)
	for _, u := range []string{
		`https://user:pass@WWW.Example.COM.:8443/path?q=1#f`,
		`http://[2001:db8::1]:80/`,
		`http://192.0.2.1/`,
		`http://bücher.example/`,
		`//host.example`,
		`http://%41.example/`,
	} {
		f.Add([]byte(`{"id":"da1_2","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"` + u + `"}]}`))
	}
	f.Add([]byte(`{"id":"da1_2","evidence":[{"@odata.type":"#microsoft.graph.security.analyzedMessageEvidence","urls":["https://a.example/",null,"https://A.example./"]}]}`))
	f.Add([]byte(`{"id":"da1_2","evidence":[{"@odata.type":"#microsoft.graph.security.dnsEvidence","domainName":"Xn--Bcher-Kva.Example."}]}`))
	f.Add([]byte(`{"id":"da1_2","evidence":null}`))
	f.Add([]byte(`{"id":"da1_2","evidence":[5,"x",null,{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var hosts hostSet
		next, err := graphWire{}.read(body, &hosts)
		if next != "" {
			t.Fatalf("a Graph alert gave a next page %q", next)
		}
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error of kind %s, want bad_response: %v", message.KindOf(err), err)
			}
			return
		}
		domains := hosts.result()
		if domains == nil {
			t.Fatal("nil domains on success")
		}
		// The one-pass typed read, when it takes the body, reads what the
		// item-by-item read does.
		var typed hostSet
		if readTyped(body, &typed) {
			var a rawAlert
			var items hostSet
			if json.Unmarshal(body, &a) != nil || readEvidence(a.Evidence, &items) != nil || !slices.Equal(typed.result(), items.result()) {
				t.Fatalf("typed read %q, item by item %q", typed.result(), items.result())
			}
		}
		seen := map[string]bool{}
		for _, d := range domains {
			if problem := notADomain(d); problem != "" {
				t.Fatalf("domain %q: %s", d, problem)
			}
			if seen[d] {
				t.Fatalf("duplicate domain %q", d)
			}
			seen[d] = true
		}
	})
}

// notADomain says why d is not a domain as a result carries it, or "".
func notADomain(d string) string {
	switch {
	case !IsDomain(d):
		return "IsDomain is false"
	case d != strings.ToLower(d):
		return "not lower case"
	case strings.ContainsAny(d, ":@/"):
		return "holds ':', '@' or '/'"
	case strings.HasSuffix(d, "."):
		return "ends with a dot"
	case isIP(d):
		return "an IP address"
	}
	return ""
}

// isIP reports whether h names an IP address: in any form Go parses, or
// in one the WHATWG URL standard's IPv4 parser reads (what browsers and
// curl connect to): one to four dot-separated numbers, each decimal, octal
// (a leading 0) or hex (0x), such as 0x7f.1 for 127.0.0.1.
func isIP(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	if len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		digits := "0123456789"
		switch {
		case len(l) >= 2 && (l[:2] == "0x" || l[:2] == "0X"):
			l, digits = l[2:], "0123456789abcdefABCDEF"
		case l == "":
			return false
		}
		if strings.Trim(l, digits) != "" {
			return false
		}
	}
	return true
}
