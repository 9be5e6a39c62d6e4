package connector_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

// TestUnfixableFailuresAreNotRetried: an untrusted certificate (of Defender
// or of Entra ID), a server that does not speak TLS and a host DNS does not
// know fail the lookup at once, as unavailable, naming the problem, though
// the retry budget is ten minutes.
func TestUnfixableFailuresAreNotRetried(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true})
	longBudget := connector.WithBackoff(time.Second, time.Second, 10*time.Minute)
	untrusting := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(untrusting.CloseIdleConnections)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	plain := newPlainServer(t)

	tests := []struct {
		name     string
		client   func(t *testing.T, api connector.API) *connector.Client
		attempts int
		message  string
		cause    func(error) bool
	}{
		{
			name: "defender certificate of an unknown authority",
			client: func(t *testing.T, api connector.API) *connector.Client {
				return newClientWith(t, srv, api, staticCredential{token: "x"}, emulator.ScopeOf(api), connector.WithHTTPClient(untrusting), longBudget)
			},
			attempts: 1,
			message:  "defender unreachable: tls certificate signed by an unknown authority",
			cause:    func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
		{
			name: "defender certificate for another host",
			client: func(t *testing.T, api connector.API) *connector.Client {
				c, err := connector.New(api, "https://localhost:"+port, staticCredential{token: "x"}, emulator.ScopeOf(api),
					connector.WithHTTPClient(srv.Client()), longBudget)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			attempts: 1,
			message:  "defender unreachable: tls certificate not valid for localhost",
			cause:    func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) },
		},
		{
			name: "defender without tls",
			client: func(t *testing.T, api connector.API) *connector.Client {
				c, err := connector.New(api, strings.Replace(plain, "http://", "https://", 1), staticCredential{token: "x"}, emulator.ScopeOf(api),
					connector.WithHTTPClient(srv.Client()), longBudget)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			attempts: 1,
			message:  "defender unreachable: the server does not speak tls",
		},
		{
			name: "entra id certificate of an unknown authority",
			client: func(t *testing.T, api connector.API) *connector.Client {
				cfg := srv.Credential()
				cfg.Transport = untrusting
				cred, err := connector.NewCredential(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return newClientWith(t, srv, api, cred, emulator.ScopeOf(api), longBudget)
			},
			attempts: 0,
			message:  "entra id unreachable: tls certificate signed by an unknown authority",
		},
		{
			name: "defender host unknown to dns",
			client: func(t *testing.T, api connector.API) *connector.Client {
				if _, err := net.LookupHost("no-such-host.invalid"); !isNotFound(err) {
					t.Skipf("this resolver does not answer NXDOMAIN for .invalid: %v", err)
				}
				c, err := connector.New(api, "https://no-such-host.invalid", staticCredential{token: "x"}, emulator.ScopeOf(api), longBudget)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			attempts: 1,
			message:  "defender unreachable: host no-such-host.invalid not found (dns)",
		},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := tt.client(t, api)
				ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
				defer cancel()
				start := time.Now()
				res, err := c.Domains(ctx, alertID)
				took := time.Since(start)
				e := asError(t, err)
				if e.Kind != message.KindUnavailable || res.Attempts != tt.attempts || !strings.Contains(e.Error(), tt.message) {
					t.Errorf("Domains = %+v, %q (kind %s); want unavailable %q after %d attempts", res, e, e.Kind, tt.message, tt.attempts)
				}
				if tt.cause != nil && !tt.cause(err) {
					t.Errorf("error %v does not wrap its cause", err)
				}
				if took > 5*time.Second {
					t.Errorf("the lookup took %s, want at once", took)
				}
			})
		}
	})
}

func isNotFound(err error) bool {
	var d *net.DNSError
	return errors.As(err, &d) && d.IsNotFound
}

// newPlainServer is an HTTP server without TLS, closed when the test ends.
func newPlainServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + ln.Addr().String()
}
