package connector

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
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
				t.Fatalf("error of kind %s, want bad_response: %v", KindOf(err), err)
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

func FuzzValidateAlertID(f *testing.F) {
	for _, s := range []string{"da637472900382838869_1364969609", "636688558380765161_2136280442",
		"da637551227677560813_-961444813", "", "a/b", "../x", strings.Repeat("a", 129), "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateAlertID(id)
		want := len(id) >= 1 && len(id) <= 128
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				want = false
			}
		}
		if (err == nil) != want {
			t.Fatalf("ValidateAlertID(%q) = %v, want valid %v", id, err, want)
		}
		if err != nil && KindOf(err) != KindInvalidRequest {
			t.Fatalf("kind %s, want invalid_request", KindOf(err))
		}
	})
}
