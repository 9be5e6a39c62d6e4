// Package redact removes the user information of URLs from text.
package redact

import (
	"regexp"
	"strings"
)

// userinfo is a URL's scheme and its user information up to the last "@"
// of the authority (which may hold a "'", as url.Parse allows).
var userinfo = regexp.MustCompile("([A-Za-z0-9+.-]+://)[^/?# \t\n\r\"<>,`]*@")

// URLs returns s with the user information of every URL in it removed:
// nats://alice:s3cret@nats:4222 becomes nats://nats:4222.
func URLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return userinfo.ReplaceAllString(s, "$1")
}

// Servers returns a NATS_URL (comma-separated server URLs, each with or
// without its scheme) with the scheme nats:// where none is given and no
// user information.
func Servers(list string) string {
	urls := strings.Split(list, ",")
	for i, u := range urls {
		if u = strings.TrimSpace(u); u != "" && !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		urls[i] = URLs(u)
	}
	return strings.Join(urls, ",")
}

// Environ returns environ (KEY=value entries) with URLs redacted in the values.
func Environ(environ []string) []string {
	out := make([]string, len(environ))
	for i, kv := range environ {
		out[i] = URLs(kv) // a name holds no "://", so only the value can change
		if servers, ok := strings.CutPrefix(kv, "NATS_URL="); ok {
			out[i] = "NATS_URL=" + Servers(servers) // also a server without a scheme
		}
	}
	return out
}
