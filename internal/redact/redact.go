// Package redact removes the user information of URLs from text.
package redact

import "strings"

// URLs returns s with the user information of every URL in it removed:
// nats://alice:s3cret@nats:4222 becomes nats://nats:4222.
func URLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		head := i + 3
		b.WriteString(rest[:head])
		rest = rest[head:]
		if i == 0 || !isScheme(s, len(s)-len(rest)-3) {
			continue
		}
		end := strings.IndexFunc(rest, endOfAuthority)
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			rest = rest[at+1:]
		}
	}
}

// isScheme reports whether the text before s[colon:] ends with a URL scheme.
func isScheme(s string, colon int) bool {
	j := colon
	for j > 0 {
		c := s[j-1]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '+' || c == '-' || c == '.' {
			j--
			continue
		}
		break
	}
	return j < colon
}

func endOfAuthority(r rune) bool {
	switch r {
	case '/', '?', '#', ' ', '\t', '\n', '\r', '"', '\'', ',', '<', '>', '`':
		return true
	}
	return false
}

// Environ returns environ (KEY=value entries) with URLs redacted in the values.
func Environ(environ []string) []string {
	out := make([]string, len(environ))
	for i, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			out[i] = kv
			continue
		}
		out[i] = name + "=" + URLs(value)
	}
	return out
}
