package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

type rule struct {
	key    string
	broken bool
	reason string
}

func firstBroken(rules ...rule) error {
	for _, r := range rules {
		if r.broken {
			return invalid(r.key, "%s", r.reason)
		}
	}
	return nil
}

var (
	namePattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	subjectPattern = regexp.MustCompile(`^[^ \t\r\n*>.]+(\.[^ \t\r\n*>.]+)*$`)
	hostPattern    = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
)

// check checks the NATS variables, none of whose values an error shows.
func (n *NATS) check() error {
	err := firstBroken(
		rule{"NATS_URL", !natsURLs(n.NATSURL), "is not a comma-separated list of server URLs such as nats://nats.example:4222 (the value is not shown)"},
		rule{"NATS_TLS_CERT_FILE", (n.NATSTLSCertFile == "") != (n.NATSTLSKeyFile == ""), "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together"},
		rule{"NATS_PASSWORD", n.NATSPassword != "" && n.NATSUser == "", "needs NATS_USER"},
		rule{"NATS_EMBEDDED_LISTEN", n.EmbeddedListen == "" || !listenAddress(n.EmbeddedListen), "is not host:port (the value is not shown)"},
	)
	for _, f := range []struct{ key, path string }{{"NATS_CREDS_FILE", n.NATSCredsFile}, {"NATS_NKEY_FILE", n.NATSNKeyFile},
		{"NATS_TLS_CA_FILE", n.NATSTLSCAFile}, {"NATS_TLS_CERT_FILE", n.NATSTLSCertFile}, {"NATS_TLS_KEY_FILE", n.NATSTLSKeyFile}} {
		if err == nil && f.path != "" {
			if ferr := checkFile(f.path); ferr != nil {
				err = invalid(f.key, "%v", ferr)
			}
		}
	}
	return err
}

// natsURLs reports whether s is a list of server URLs, or empty.
func natsURLs(s string) bool {
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u == "" && strings.TrimSpace(s) == "" { // empty: the embedded server; ",": nothing
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil || !hostPattern.MatchString(p.Hostname()) {
			return false
		}
	}
	return true
}

func (s *Streams) check() error {
	name := func(key, v string) rule {
		return rule{key, !namePattern.MatchString(v), fmt.Sprintf("%q is not a valid JetStream name (letters, digits, - and _)", v)}
	}
	subject := func(key, v string) rule {
		return rule{key, !subjectPattern.MatchString(v), fmt.Sprintf("%q is not a valid literal subject", v)}
	}
	return firstBroken(
		rule{"ACK_WAIT", s.AckWait < time.Second || s.AckWait > 24*time.Hour, "must be between 1s and 24h"},
		rule{"SHUTDOWN_TIMEOUT", s.ShutdownTimeout <= 0, "must be more than 0"},
		rule{"CONCURRENCY", s.Concurrency < 1 || s.Concurrency > MaxConcurrency, fmt.Sprintf("must be between 1 and %d", MaxConcurrency)},
		rule{"STREAM_REPLICAS", s.StreamReplicas < 1 || s.StreamReplicas > MaxStreamReplicas, fmt.Sprintf("must be between 1 and %d", MaxStreamReplicas)},
		rule{"MAX_DELIVER", s.MaxDeliver < 1 || s.MaxDeliver > 10_000, "must be between 1 and 10000"}, // ACK_WAIT times it stays a duration
		name("REQUEST_STREAM", s.RequestStream), name("RESULT_STREAM", s.ResultStream), name("CONSUMER_NAME", s.ConsumerName),
		subject("REQUEST_SUBJECT", s.RequestSubject), subject("SUCCESS_SUBJECT", s.SuccessSubject), subject("FAILURE_SUBJECT", s.FailureSubject),
		rule{"FAILURE_SUBJECT", s.SuccessSubject == s.FailureSubject, "must differ from SUCCESS_SUBJECT"},
		rule{"REQUEST_SUBJECT", s.RequestSubject == s.SuccessSubject || s.RequestSubject == s.FailureSubject, "must differ from the result subjects"},
		rule{"RESULT_STREAM", s.RequestStream == s.ResultStream, "must differ from REQUEST_STREAM"},
	)
}

func (o *Operations) check() error {
	levelErr := o.Level.UnmarshalText([]byte(o.LogLevel))
	o.HookVariables = nil
	badHookVar, secretHookVar := "", ""
	for n := range strings.SplitSeq(o.HookEnv, ",") {
		switch n = strings.TrimSpace(n); {
		case n == "":
		case !envNamePattern.MatchString(n):
			badHookVar = cmp.Or(badHookVar, n)
		case slices.Contains(secretVariables, n):
			secretHookVar = cmp.Or(secretHookVar, n)
		default:
			o.HookVariables = append(o.HookVariables, n)
		}
	}
	return firstBroken(
		rule{"HOOK_ENV", badHookVar != "", "names something that is not a variable name (the value is not shown)"},
		rule{"HOOK_ENV", secretHookVar != "", fmt.Sprintf("names %s, a secret: hooks never get the service's credentials", secretHookVar)},
		rule{"EXEC_TIMEOUT", o.ExecTimeout <= 0, "must be more than 0"},
		rule{"CACHE_TTL", o.CacheTTL < 0 || (o.CacheTTL > 0 && o.CacheTTL < time.Second), "must be 0 (off) or at least 1s"},
		rule{"LOG_FORMAT", o.LogFormat != "" && o.LogFormat != "text" && o.LogFormat != "json", fmt.Sprintf("%q is not text or json", o.LogFormat)},
		rule{"LOG_LEVEL", levelErr != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(o.LogLevel)), fmt.Sprintf("%q is not debug, info, warn or error", o.LogLevel)},
		rule{"HTTP_LISTEN", !listenAddress(o.HTTPListen), fmt.Sprintf("%q is not host:port (127.0.0.1:8080, :8080, [::1]:8080) with a port from 0 to 65535", o.HTTPListen)},
	)
}

// secretVariables hold secrets: HOOK_ENV may not name them.
var secretVariables = []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "NATS_PASSWORD", "NATS_TOKEN",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"}

// listenAddress reports whether s is a host:port to listen on, or empty.
func listenAddress(s string) bool {
	if s == "" {
		return true
	}
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	return err == nil && perr == nil && n >= 0 && n <= 65535 && !strings.ContainsAny(host, " /@")
}
