package redact

import (
	"slices"
	"testing"
)

func TestURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no url here", "no url here"},
		{"nats://alice:s3cret@127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://tok3n@nats:4222", "nats://nats:4222"},
		{"nats://a:b@n1:4222,nats://c:d@n2:4222", "nats://n1:4222,nats://n2:4222"},
		{`DEFENDER_API_URL="http://user:pass@example.com/api" must be https`, `DEFENDER_API_URL="http://example.com/api" must be https`},
		{"https://u:p@w@host/path?q=a@b", "https://host/path?q=a@b"},
		{"mail me at a@b, see https://host/x", "mail me at a@b, see https://host/x"},
		{"://user:pw@host", "://user:pw@host"},
		{"tls://u:p@h:1 and nats://h2", "tls://h:1 and nats://h2"},
		{"nats://alice:s3'cret@127.0.0.1:1: no servers", "nats://127.0.0.1:1: no servers"},
	} {
		if got := URLs(tc.in); got != tc.want {
			t.Errorf("URLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestServers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice:s3cret@127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://a:b@n1:4222, c:d@n2:4222", "nats://n1:4222,nats://n2:4222"},
		{"tls://n1:4222,n2", "tls://n1:4222,nats://n2"},
		{"", ""},
	} {
		if got := Servers(tc.in); got != tc.want {
			t.Errorf("Servers(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEnviron(t *testing.T) {
	in := []string{"NATS_URL=nats://alice:s3cret@nats:4222", "HOME=/root", "ODD", "X=a=b", "NATS_URL=bob:s3cret@nats:4222"}
	want := []string{"NATS_URL=nats://nats:4222", "HOME=/root", "ODD", "X=a=b", "NATS_URL=nats://nats:4222"}
	if got := Environ(in); !slices.Equal(got, want) {
		t.Errorf("Environ = %q, want %q", got, want)
	}
}

func FuzzURLs(f *testing.F) {
	f.Add("nats://alice:s3cret@127.0.0.1:4222")
	f.Add("x://@")
	f.Fuzz(func(t *testing.T, s string) {
		out := URLs(s)
		if len(out) > len(s) {
			t.Fatalf("URLs grew %q to %q", s, out)
		}
		if URLs(out) != out {
			t.Fatalf("URLs not idempotent on %q: %q", s, out)
		}
	})
}
