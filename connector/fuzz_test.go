package connector

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alert-domains/alert-domains/message"
)

func FuzzParseDomains(f *testing.F) {
	f.Add([]byte(`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"www.example2.com"}]}`))
	f.Add([]byte(`{"value":[]}`))
	f.Add([]byte(`{"value":[{"host":"a"},{"host":"a"}],"@odata.nextLink":"https://x/y"}`))
	f.Add([]byte(`{"value":[{"host":"a\ud800"}]}`))
	f.Add([]byte("{\"value\":[{\"host\":\"\xff\"}]}"))
	f.Add([]byte(`<html></html>`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		domains, _, err := parseDomains(body)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error of kind %s, want bad_response: %v", message.KindOf(err), err)
			}
			return
		}
		if domains == nil {
			t.Fatal("nil domains on success")
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
