package connector

import (
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	const secret = "S3cret+/=&~x"
	tests := []struct{ name, in, gone string }{
		{"form", "body: client_id=a&client_secret=S3cret%2B%2F%3D%26~x&grant_type=client_credentials", "S3cret"},
		{"form, unknown secret", "client_secret=another-secret&scope=x", "another-secret"},
		{"assertion", "client_assertion_type=urn%3Aietf&client_assertion=abc.def.ghi&scope=x", "abc.def.ghi"},
		{"json", `{"token_type":"Bearer","access_token":"AT-123456"}`, "AT-123456"},
		{"pretty json", "{\n  \"access_token\": \"AT-123456\"\n}", "AT-123456"},
		{"refresh token", `"refresh_token" : "RT-999"`, "RT-999"},
		{"bearer", "Authorization: Bearer AT-123456", "AT-123456"},
		{"jwt", "raw message was: eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln and more", "eyJzdWIiOiJ4In0"},
		{"secret as is", "the secret " + secret + " leaked", secret},
		{"secret in json", `"S3cret+\/=&~x"`, `S3cret`},
		{"5xx body", "RESPONSE 500: 500 Internal Server Error\n{\n  \"access_token\": \"AT-5xx\"\n}", "AT-5xx"},
	}
	for _, tt := range tests {
		got := scrub(tt.in, secret)
		if strings.Contains(got, tt.gone) || !strings.Contains(got, redacted) {
			t.Errorf("%s: scrub(%q) = %q", tt.name, tt.in, got)
		}
	}
	if got := scrub("AADSTS7000215: Invalid client secret provided. Trace ID: 1234"); got != "AADSTS7000215: Invalid client secret provided. Trace ID: 1234" {
		t.Errorf("harmless text changed: %q", got)
	}
}
