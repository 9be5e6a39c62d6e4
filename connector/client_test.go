package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

const alertID = "da637472900382838869_1364969609"

func TestDomainsSeedData(t *testing.T) {
	type want struct {
		domains  []string
		graphID  string
		kind     message.Kind
		status   int
		code     string
		attempts int
	}
	tests := []struct {
		id  string
		api map[connector.API]want
	}{
		{id: alertID, api: map[connector.API]want{
			connector.MDE:   {domains: []string{"www.example.com", "cdn.example.net"}, attempts: 1},
			connector.Graph: {domains: []string{"www.example.com", "cdn.example.net"}, attempts: 1},
		}},
		{id: "636688558380765161_2136280442", api: map[connector.API]want{
			connector.MDE: {domains: []string{}, attempts: 1},
			// Graph knows the endpoint ID only with its prefix: asked twice.
			connector.Graph: {domains: []string{}, graphID: "da636688558380765161_2136280442", attempts: 2},
		}},
		{id: "da637551227677560813_-961444813", api: map[connector.API]want{
			connector.MDE:   {domains: []string{"update.example.com", "telemetry.example.net"}, attempts: 1},
			connector.Graph: {domains: []string{"update.example.com", "telemetry.example.net"}, attempts: 1},
		}},
		{id: "da999999999999999999_1", api: map[connector.API]want{
			connector.MDE:   {kind: message.KindNotFound, status: 404, code: "ResourceNotFound", attempts: 1},
			connector.Graph: {kind: message.KindNotFound, status: 404, code: "NotFound", attempts: 1},
		}},
		{id: "../../admin", api: map[connector.API]want{connector.MDE: {kind: message.KindInvalidRequest}, connector.Graph: {kind: message.KindInvalidRequest}}},
		{id: "", api: map[connector.API]want{connector.MDE: {kind: message.KindInvalidRequest}, connector.Graph: {kind: message.KindInvalidRequest}}},
		{id: strings.Repeat("a", 129), api: map[connector.API]want{connector.MDE: {kind: message.KindInvalidRequest}, connector.Graph: {kind: message.KindInvalidRequest}}},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, api)
		for _, tt := range tests {
			w := tt.api[api]
			t.Run(tt.id, func(t *testing.T) {
				before := srv.Calls()
				res, err := c.Domains(t.Context(), tt.id)
				if res.Attempts != w.attempts {
					t.Errorf("Attempts = %d, want %d", res.Attempts, w.attempts)
				}
				if n := srv.Calls() - before; n != w.attempts {
					t.Errorf("emulator saw %d calls, want %d", n, w.attempts)
				}
				if n := srv.CallsOf(api); n != srv.Calls() {
					t.Errorf("%d calls went to %s of %d", n, api, srv.Calls())
				}
				if w.kind != "" {
					e := asError(t, err)
					if e.Kind != w.kind || e.HTTPStatus != w.status || e.Code != w.code {
						t.Errorf("error = %+v, want kind %s status %d code %q", e, w.kind, w.status, w.code)
					}
					if !errors.Is(err, &connector.Error{Kind: w.kind}) {
						t.Errorf("errors.Is(err, kind %s) = false", w.kind)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.Domains == nil || !reflect.DeepEqual(res.Domains, w.domains) {
					t.Errorf("Domains = %#v, want %#v", res.Domains, w.domains)
				}
				if res.GraphAlertID != w.graphID {
					t.Errorf("GraphAlertID = %q, want %q", res.GraphAlertID, w.graphID)
				}
			})
		}
	})
}

func TestRequestOnTheWire(t *testing.T) {
	type seen struct {
		method, path, rawPath, accept, ua, auth string
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		got := make(chan seen, 1)
		ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- seen{r.Method, r.URL.Path, r.URL.RawPath, r.Header.Get("Accept"), r.Header.Get("User-Agent"), r.Header.Get("Authorization")}
			_, _ = w.Write([]byte(successBody(api, alertID, "a.example")))
		}))
		t.Cleanup(ts.Close)

		path := callPath(api, alertID)
		tests := []struct {
			name, base, wantPath string
		}{
			{name: "root", base: ts.URL, wantPath: path},
			{name: "trailing slash", base: ts.URL + "/", wantPath: path},
			{name: "base path", base: ts.URL + "/proxy/", wantPath: "/proxy" + path},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := connector.New(api, tt.base, staticCredential{"tok-123"}, emulator.ScopeOf(api), connector.WithHTTPClient(ts.Client()))
				if err != nil {
					t.Fatal(err)
				}
				if c.API() != api {
					t.Errorf("API = %s, want %s", c.API(), api)
				}
				res, err := c.Domains(t.Context(), alertID)
				if err != nil || !reflect.DeepEqual(res.Domains, []string{"a.example"}) {
					t.Fatalf("Domains = %v, %v", res, err)
				}
				s := <-got
				want := seen{http.MethodGet, tt.wantPath, "", "application/json", "alert-domains/" + connector.Version, "Bearer tok-123"}
				if s != want {
					t.Errorf("request = %+v, want %+v", s, want)
				}
			})
		}
	})
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	cred := staticCredential{"t"}
	tests := []struct {
		name   string
		setAPI bool // api replaces the API under test
		api    connector.API
		base   string
		cred   any
		scope  string
		opts   []connector.Option
	}{
		{name: "no api", setAPI: true, api: "", base: "https://graph.microsoft.com"},
		{name: "unknown api", setAPI: true, api: "xdr", base: "https://graph.microsoft.com"},
		{name: "api in upper case", setAPI: true, api: "Graph", base: "https://graph.microsoft.com"},
		{name: "http", base: "http://api.securitycenter.microsoft.com"},
		{name: "no scheme", base: "api.securitycenter.microsoft.com"},
		{name: "ftp", base: "ftp://api.securitycenter.microsoft.com"},
		{name: "no host", base: "https://"},
		{name: "user info", base: "https://u:p@api.securitycenter.microsoft.com"},
		{name: "query", base: "https://api.securitycenter.microsoft.com?x=1"},
		{name: "not a url", base: "https://[::1"},
		{name: "empty scope", base: "https://api.securitycenter.microsoft.com", scope: " "},
		{name: "nil credential", base: "https://api.securitycenter.microsoft.com", cred: "nil"},
		{name: "nil http client", base: "https://x", opts: []connector.Option{connector.WithHTTPClient(nil)}},
		{name: "zero timeout", base: "https://x", opts: []connector.Option{connector.WithTimeout(0)}},
		{name: "bad backoff", base: "https://x", opts: []connector.Option{connector.WithBackoff(time.Second, time.Millisecond, time.Minute)}},
		{name: "zero body cap", base: "https://x", opts: []connector.Option{connector.WithMaxBodyBytes(0)}},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := api
				if tt.setAPI {
					a = tt.api
				}
				scope := emulator.ScopeOf(api)
				if tt.scope != "" {
					scope = tt.scope
				}
				var err error
				if tt.cred == "nil" {
					_, err = connector.New(a, tt.base, nil, scope, tt.opts...)
				} else {
					_, err = connector.New(a, tt.base, cred, scope, tt.opts...)
				}
				if !errors.Is(err, connector.ErrConfig) {
					t.Errorf("New = %v, want ErrConfig", err)
				}
			})
		}
		if _, err := connector.New(api, "http://127.0.0.1:8080", cred, emulator.ScopeOf(api), connector.WithInsecureHTTP()); err != nil {
			t.Errorf("New(http, WithInsecureHTTP) = %v", err)
		}
	})
}

func TestTokenIsCached(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{AnyAlert: true})
		c := newClient(t, srv, api)
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 50 {
			wg.Go(func() {
				for j := range 4 {
					if _, err := c.Domains(t.Context(), fmt.Sprintf("da%d_%d", i, j)); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := srv.TokensIssued(); n != 1 {
			t.Errorf("%d tokens issued for 200 calls, want 1", n)
		}
		if n := srv.CallsOf(api); n != 200 {
			t.Errorf("emulator saw %d calls, want 200", n)
		}
	})
}

func TestUnauthorizedGetsOneFreshToken(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		t.Run("401 once", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api)
			srv.Script(alertID, emulator.Answer{Status: 401, Body: errorBody(api, wantCode(api, 401))})
			res, err := c.Domains(t.Context(), alertID)
			if err != nil || res.Attempts != 2 || len(res.Domains) != 2 {
				t.Fatalf("Domains = %+v, %v; want 2 domains after 2 attempts", res, err)
			}
			if n, m := srv.TokensIssued(), srv.TokensForClaims(); n != 2 || m != 1 {
				t.Errorf("%d tokens issued, %d of them for a claims challenge; want 2 and 1", n, m)
			}
		})
		t.Run("revoked token replaced", func(t *testing.T) {
			// Tokens live an hour, so the credential's cache would hand the
			// revoked one back if asked plainly.
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api)
			if _, err := c.Domains(t.Context(), alertID); err != nil {
				t.Fatal(err)
			}
			srv.ExpireTokens()
			res, err := c.Domains(t.Context(), alertID)
			if err != nil || res.Attempts != 2 {
				t.Fatalf("Domains = %+v, %v; want success after 2 attempts", res, err)
			}
			if n, m := srv.TokensIssued(), srv.TokensForClaims(); n != 2 || m != 1 {
				t.Errorf("%d tokens issued, %d of them for a claims challenge; want 2 and 1", n, m)
			}
			if n := srv.Answered(401); n != 1 {
				t.Errorf("%d answers 401, want 1", n)
			}
			// The new token is the one kept.
			res, err = c.Domains(t.Context(), alertID)
			if err != nil || res.Attempts != 1 || srv.TokensIssued() != 2 {
				t.Fatalf("next lookup: %+v, %v, %d tokens issued; want success after 1 attempt with the new token", res, err, srv.TokensIssued())
			}
		})
		t.Run("expired token replaced", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true, TokenLifetime: 4 * time.Minute})
			c := newClient(t, srv, api)
			if _, err := c.Domains(t.Context(), alertID); err != nil {
				t.Fatal(err)
			}
			srv.ExpireTokens()
			res, err := c.Domains(t.Context(), alertID)
			if err != nil || res.Attempts != 2 {
				t.Fatalf("Domains = %+v, %v; want success after 2 attempts", res, err)
			}
			if n := srv.TokensIssued(); n != 2 {
				t.Errorf("%d tokens issued, want 2", n)
			}
		})
		t.Run("always rejected", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api)
			if _, err := c.Domains(t.Context(), alertID); err != nil {
				t.Fatal(err)
			}
			srv.SetOutage(401)
			res, err := c.Domains(t.Context(), alertID)
			e := asError(t, err)
			if e.Kind != message.KindUnauthorized || e.HTTPStatus != 401 || e.Code != wantCode(api, 401) || res.Attempts != 2 {
				t.Fatalf("Domains = %+v, %+v; want unauthorized (%s) after 2 attempts", res, e, wantCode(api, 401))
			}
			if n, m := srv.TokensIssued(), srv.TokensForClaims(); n != 2 || m != 1 {
				t.Errorf("%d tokens issued, %d of them for a claims challenge; want 2 and 1 (exactly one fresh token)", n, m)
			}
			// The fresh token is rejected too: the next lookups do not ask
			// Entra ID again at once, nor Defender twice.
			for range 3 {
				res, err = c.Domains(t.Context(), alertID)
				if e := asError(t, err); e.Kind != message.KindUnauthorized || res.Attempts != 1 {
					t.Fatalf("Domains = %+v, %+v; want unauthorized after 1 attempt", res, e)
				}
			}
			if n := srv.TokensIssued(); n != 2 {
				t.Errorf("%d tokens issued, want 2", n)
			}
		})
	})
}

func TestThrottledWaitsRetryAfter(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, api, connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, 10*time.Second))
		srv.Script(alertID, emulator.Answer{Status: 429, Header: header("Retry-After", "2"), Body: errorBody(api, "TooManyRequests")})
		res, err := c.Domains(t.Context(), alertID)
		if err != nil || res.Attempts != 2 {
			t.Fatalf("Domains = %+v, %v; want success after 2 attempts", res, err)
		}
		times := srv.CallTimes()
		if len(times) != 2 {
			t.Fatalf("%d calls, want 2", len(times))
		}
		if gap := times[1].Sub(times[0]); gap < 2*time.Second {
			t.Errorf("retried %s after a 429 with Retry-After: 2", gap)
		}
	})
}

func TestThrottled(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		t.Run("without Retry-After backs off", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api)
			srv.Script(alertID, emulator.Answer{Status: 429}, emulator.Answer{Status: 429, Body: errorBody(api, "TooManyRequests")})
			res, err := c.Domains(t.Context(), alertID)
			if err != nil || res.Attempts != 3 {
				t.Fatalf("Domains = %+v, %v; want success after 3 attempts", res, err)
			}
		})
		t.Run("Retry-After beyond the budget gives up at once", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api)
			srv.Script(alertID, emulator.Answer{Status: 429, Header: header("Retry-After", "30"), Body: errorBody(api, "TooManyRequests")})
			start := time.Now()
			res, err := c.Domains(t.Context(), alertID)
			e := asError(t, err)
			if e.Kind != message.KindThrottled || e.RetryAfter != 30*time.Second || e.Code != "TooManyRequests" || res.Attempts != 1 {
				t.Fatalf("Domains = %+v, %+v; want throttled after 1 attempt", res, e)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("gave up after %s", d)
			}
		})
		t.Run("kept throttling until the budget ran out", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api, connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, 300*time.Millisecond))
			srv.SetOutage(429)
			res, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindThrottled || res.Attempts < 3 {
				t.Fatalf("Domains = %+v, %+v; want throttled after several attempts", res, e)
			}
		})
		t.Run("emulator quota", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true, Quota: []connector.Limit{{Count: 1, Window: time.Hour}}})
			c := newClient(t, srv, api)
			if _, err := c.Domains(t.Context(), alertID); err != nil {
				t.Fatal(err)
			}
			_, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindThrottled || e.RetryAfter < 59*time.Minute || e.Code != "TooManyRequests" {
				t.Fatalf("error = %+v, want throttled with Retry-After about an hour", e)
			}
		})
	})
}

func TestUnavailableThenSuccess(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		rec := &recorder{}
		c := newClient(t, srv, api, connector.WithObserver(rec))
		srv.Script(alertID,
			emulator.Answer{Status: 500, Body: errorBody(api, "InternalServerError")},
			emulator.Answer{Status: 503},
			emulator.Answer{Status: 502, Body: "<html><body>Bad Gateway</body></html>"},
		)
		res, err := c.Domains(t.Context(), alertID)
		if err != nil || res.Attempts != 4 || len(res.Domains) != 2 {
			t.Fatalf("Domains = %+v, %v; want success after 4 attempts", res, err)
		}
		if got := rec.statuses(); !reflect.DeepEqual(got, []int{500, 503, 502, 200}) {
			t.Errorf("observed statuses %v", got)
		}
	})
}

func TestOutageLongerThanBudget(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, api, connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, 300*time.Millisecond))
		srv.SetOutage(503)
		start := time.Now()
		res, err := c.Domains(t.Context(), alertID)
		e := asError(t, err)
		if e.Kind != message.KindUnavailable || e.HTTPStatus != 503 || e.Code != wantCode(api, 503) {
			t.Fatalf("error = %+v, want unavailable 503 %s", e, wantCode(api, 503))
		}
		if res.Attempts < 3 || res.Attempts != srv.Calls() {
			t.Errorf("Attempts = %d, emulator saw %d", res.Attempts, srv.Calls())
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("gave up after %s with a 300ms budget", d)
		}
		srv.SetOutage(0)
		if _, err := c.Domains(t.Context(), alertID); err != nil {
			t.Errorf("after the outage: %v", err)
		}
	})
}

func TestTimeoutsAreRetried(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		for _, a := range []emulator.Answer{{Delay: time.Minute}, {Slow: true}} {
			t.Run(fmt.Sprintf("slow=%v", a.Slow), func(t *testing.T) {
				srv := newServer(t, emulator.Config{SeedData: true})
				rec := &recorder{}
				c := newClient(t, srv, api, connector.WithTimeout(500*time.Millisecond), connector.WithObserver(rec))
				// A first call gets the token, so the time-out covers requests only.
				if _, err := c.Domains(t.Context(), "da637200417169017725_183736971"); err != nil {
					t.Fatal(err)
				}
				srv.Script(alertID, a)
				res, err := c.Domains(t.Context(), alertID)
				if err != nil || res.Attempts != 2 {
					t.Fatalf("Domains = %+v, %v; want success after 2 attempts", res, err)
				}
				want := []int{200, 0, 200}
				if a.Slow {
					want = []int{200, 200, 200} // the headers came, the body did not
				}
				if got := rec.statuses(); !reflect.DeepEqual(got, want) {
					t.Errorf("observed %v, want %v", got, want)
				}
			})
		}
	})
}

func TestNetworkError(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		rec := &recorder{}
		c, err := connector.New(api, "https://"+addr, staticCredential{"t"}, emulator.ScopeOf(api),
			connector.WithBackoff(10*time.Millisecond, 20*time.Millisecond, 100*time.Millisecond), connector.WithObserver(rec))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		res, err := c.Domains(t.Context(), alertID)
		e := asError(t, err)
		if e.Kind != message.KindUnavailable || e.HTTPStatus != 0 || res.Attempts < 2 {
			t.Fatalf("Domains = %+v, %+v; want unavailable after retries", res, e)
		}
		for _, s := range rec.statuses() {
			if s != 0 {
				t.Errorf("observed status %d for a refused connection, want 0", s)
			}
		}
	})
}

func TestBodyOverCap(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		t.Run("default 4 MiB", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api)
			srv.Script(alertID, emulator.Answer{BodyBytes: 5 << 20})
			res, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindBadResponse || e.HTTPStatus != 200 || res.Attempts != 1 {
				t.Fatalf("Domains = %+v, %+v; want bad_response after 1 attempt", res, e)
			}
		})
		t.Run("at and over a small cap", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			c := newClient(t, srv, api, connector.WithMaxBodyBytes(1024))
			srv.Script(alertID, emulator.Answer{BodyBytes: 1024}, emulator.Answer{BodyBytes: 1024, NoLength: true},
				emulator.Answer{BodyBytes: 1025}, emulator.Answer{BodyBytes: 1025, NoLength: true})
			// The scripted answer is one huge host: a host on the endpoint
			// API, a URL whose host is no domain (a label of 900 bytes) on
			// Graph.
			want := map[connector.API]int{connector.MDE: 1, connector.Graph: 0}[api]
			for range 2 {
				res, err := c.Domains(t.Context(), alertID)
				if err != nil || len(res.Domains) != want {
					t.Fatalf("a body of exactly the cap: %+v, %v", res, err)
				}
			}
			for range 2 {
				_, err := c.Domains(t.Context(), alertID)
				if e := asError(t, err); e.Kind != message.KindBadResponse {
					t.Fatalf("a body one byte over the cap: %+v", e)
				}
			}
		})
	})
	t.Run("mde/cap counts all pages", func(t *testing.T) {
		hosts := make([]string, 40)
		for i := range hosts {
			hosts[i] = fmt.Sprintf("host-%02d.example.com", i)
		}
		srv := newServer(t, emulator.Config{Alerts: map[string][]string{alertID: hosts}, PageSize: 10})
		c := newClient(t, srv, connector.MDE, connector.WithMaxBodyBytes(1000))
		_, err := c.Domains(t.Context(), alertID)
		if e := asError(t, err); e.Kind != message.KindBadResponse {
			t.Fatalf("error = %+v, want bad_response", e)
		}
	})
}

func TestNotTheDocumentedJSON(t *testing.T) {
	common := map[string]string{
		"html":          "<html><body>hello</body></html>",
		"empty":         "",
		"null":          "null",
		"array":         `[{"host":"x"}]`,
		"invalid utf-8": "{\"value\":[{\"host\":\"a\xc3(b\"}],\"id\":\"a\xc3(b\"}",
	}
	bodies := map[connector.API]map[string]string{
		connector.MDE: {
			"null value":    `{"value":null}`,
			"no value":      `{"@odata.context":"x"}`,
			"empty host":    `{"value":[{"host":""}]}`,
			"number host":   `{"value":[{"host":7}]}`,
			"truncated":     `{"value":[{"host":"a.example"}`,
			"a graph alert": successBody(connector.Graph, alertID, "a.example"),
		},
		connector.Graph: {
			"no id":                        `{"@odata.type":"#microsoft.graph.security.alert","evidence":[]}`,
			"empty id":                     `{"id":"","evidence":[]}`,
			"null id":                      `{"id":null,"evidence":[]}`,
			"number id":                    `{"id":5,"evidence":[]}`,
			"evidence a string":            `{"id":"` + alertID + `","evidence":"x"}`,
			"evidence an object":           `{"id":"` + alertID + `","evidence":{"url":"https://a.example/"}}`,
			"url a number":                 `{"id":"` + alertID + `","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":5}]}`,
			"url an object":                `{"id":"` + alertID + `","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":{"href":"https://a.example/"}}]}`,
			"urls a string":                `{"id":"` + alertID + `","evidence":[{"@odata.type":"#microsoft.graph.security.analyzedMessageEvidence","urls":"https://a.example/"}]}`,
			"urls with a number":           `{"id":"` + alertID + `","evidence":[{"@odata.type":"#microsoft.graph.security.analyzedMessageEvidence","urls":["https://a.example/",5]}]}`,
			"domainName a list":            `{"id":"` + alertID + `","evidence":[{"@odata.type":"#microsoft.graph.security.dnsEvidence","domainName":["a.example"]}]}`,
			"truncated":                    successBody(connector.Graph, alertID, "a.example")[:200],
			"trailing garbage":             successBody(connector.Graph, alertID, "a.example") + " x",
			"an endpoint api list":         successBody(connector.MDE, alertID, "a.example"),
			"bad value after good domains": `{"id":"` + alertID + `","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"https://a.example/"},{"@odata.type":"#microsoft.graph.security.urlEvidence","url":true}]}`,
		},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, api)
		cases := map[string]string{}
		for k, v := range common {
			cases[k] = v
		}
		for k, v := range bodies[api] {
			cases[k] = v
		}
		for name, body := range cases {
			t.Run(name, func(t *testing.T) {
				srv.Script(alertID, emulator.Answer{Status: 200, Body: body})
				res, err := c.Domains(t.Context(), alertID)
				if e := asError(t, err); e.Kind != message.KindBadResponse || e.HTTPStatus != 200 || res.Attempts != 1 {
					t.Fatalf("Domains = %+v, %+v; want bad_response after 1 attempt", res, e)
				}
				if !errors.Is(err, connector.ErrBadResponse) {
					t.Error("errors.Is(err, ErrBadResponse) = false")
				}
			})
		}
	})
}

func TestNotFound(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, api)
		for name, a := range map[string]emulator.Answer{
			"empty body": {Status: 404},
			"html body":  {Status: 404, Body: "<html>Not Found</html>", Header: header("Content-Type", "text/html")},
			"json body":  {Status: 404, Body: errorBody(api, wantCode(api, 404))},
		} {
			t.Run(name, func(t *testing.T) {
				srv.Script(alertID, a)
				res, err := c.Domains(t.Context(), alertID)
				e := asError(t, err)
				if e.Kind != message.KindNotFound || e.HTTPStatus != 404 || res.Attempts != 1 {
					t.Fatalf("Domains = %+v, %+v; want not_found after 1 attempt", res, e)
				}
				if !errors.Is(err, connector.ErrNotFound) {
					t.Error("errors.Is(err, ErrNotFound) = false")
				}
			})
		}
	})
}

func TestTerminalAnswersAreNotRetried(t *testing.T) {
	tests := []struct {
		status int
		kind   message.Kind
	}{
		{400, message.KindBadRequest},
		{403, message.KindForbidden},
		{405, message.KindBadRequest},
		{302, message.KindBadResponse},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, api)
		for _, tt := range tests {
			srv.Script(alertID, emulator.Answer{Status: tt.status, Body: errorBody(api, "X"), Header: header("Location", "https://elsewhere.example/")})
			res, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != tt.kind || e.HTTPStatus != tt.status || res.Attempts != 1 {
				t.Errorf("status %d: Domains = %+v, %+v; want %s after 1 attempt", tt.status, res, e, tt.kind)
			}
		}
		if n := srv.Calls(); n != len(tests) {
			t.Errorf("emulator saw %d calls, want %d", n, len(tests))
		}
	})
}

// TestNextLink: the endpoint API's pages are followed on the same host
// only. Graph's alert call has no pages: a nextLink in an alert object is
// not followed.
func TestNextLink(t *testing.T) {
	t.Run("mde/same host followed", func(t *testing.T) {
		hosts := []string{"a.example", "b.example", "c.example", "a.example", "d.example"}
		srv := newServer(t, emulator.Config{Alerts: map[string][]string{alertID: hosts}, PageSize: 2})
		c := newClient(t, srv, connector.MDE)
		res, err := c.Domains(t.Context(), alertID)
		want := []string{"a.example", "b.example", "c.example", "d.example"}
		if err != nil || !reflect.DeepEqual(res.Domains, want) || res.Attempts != 3 {
			t.Fatalf("Domains = %+v, %v; want %v after 3 attempts", res, err, want)
		}
	})
	t.Run("mde/relative link followed", func(t *testing.T) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, connector.MDE)
		srv.Script(alertID, emulator.Answer{Body: `{"value":[{"host":"first.example"}],"@odata.nextLink":"/api/alerts/` + alertID + `/domains?$skip=1"}`})
		res, err := c.Domains(t.Context(), alertID)
		want := []string{"first.example", "www.example.com", "cdn.example.net"}
		if err != nil || !reflect.DeepEqual(res.Domains, want) || res.Attempts != 2 {
			t.Fatalf("Domains = %+v, %v; want %v", res, err, want)
		}
	})
	t.Run("mde/other host refused", func(t *testing.T) {
		var hits atomic.Int32
		other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_, _ = w.Write([]byte(`{"value":[]}`))
		}))
		t.Cleanup(other.Close)
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, connector.MDE)
		for _, link := range []string{
			other.URL + "/api/alerts/" + alertID + "/domains?$skip=1",
			strings.Replace(srv.URL, "https://", "http://", 1) + "/api/alerts/x/domains",
			"https://user@" + strings.TrimPrefix(srv.URL, "https://") + "/api/alerts/x/domains",
			"//evil.example/api/alerts/x/domains",
		} {
			srv.Script(alertID, emulator.Answer{Body: `{"value":[{"host":"a.example"}],"@odata.nextLink":"` + link + `"}`})
			res, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindBadResponse || res.Attempts != 1 {
				t.Errorf("next link %s: Domains = %+v, %+v; want bad_response after 1 attempt", link, res, e)
			}
		}
		if hits.Load() != 0 {
			t.Errorf("the other host got %d requests", hits.Load())
		}
	})
	t.Run("mde/link back to itself", func(t *testing.T) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, connector.MDE)
		self := srv.URL + "/api/alerts/" + alertID + "/domains"
		for _, link := range []string{self, "/api/alerts/" + alertID + "/domains", strings.ToUpper(srv.URL[:5]) + srv.URL[5:] + "/api/alerts/" + alertID + "/domains"} {
			page := emulator.Answer{Body: `{"value":[{"host":"a.example"}],"@odata.nextLink":"` + link + `"}`}
			srv.Script(alertID, page)
			before := srv.CallsFor(alertID)
			res, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindBadResponse || res.Attempts != 1 || !strings.Contains(e.Message, "already read") {
				t.Errorf("next link %s: Domains = %+v, %+v; want bad_response after 1 attempt", link, res, e)
			}
			if n := srv.CallsFor(alertID) - before; n != 1 {
				t.Errorf("next link %s: %d calls, want 1", link, n)
			}
		}
	})
	t.Run("mde/loop of two pages", func(t *testing.T) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, connector.MDE)
		first := emulator.Answer{Body: `{"value":[{"host":"a.example"}],"@odata.nextLink":"/api/alerts/` + alertID + `/domains?$skip=1"}`}
		second := emulator.Answer{Body: `{"value":[{"host":"b.example"}],"@odata.nextLink":"/api/alerts/` + alertID + `/domains"}`}
		srv.Script(alertID, first, second, first, second)
		res, err := c.Domains(t.Context(), alertID)
		if e := asError(t, err); e.Kind != message.KindBadResponse || res.Attempts != 2 {
			t.Fatalf("Domains = %+v, %+v; want bad_response after 2 attempts", res, e)
		}
	})
	t.Run("mde/more than 10 pages", func(t *testing.T) {
		hosts := make([]string, 30)
		for i := range hosts {
			hosts[i] = fmt.Sprintf("host-%02d.example.com", i)
		}
		srv := newServer(t, emulator.Config{Alerts: map[string][]string{alertID: hosts[:10], "eleven": hosts[:11]}, PageSize: 1})
		c := newClient(t, srv, connector.MDE)
		res, err := c.Domains(t.Context(), alertID)
		if err != nil || len(res.Domains) != 10 || res.Attempts != 10 {
			t.Fatalf("10 pages: Domains = %+v, %v; want 10 hosts after 10 attempts", res, err)
		}
		res, err = c.Domains(t.Context(), "eleven")
		if e := asError(t, err); e.Kind != message.KindBadResponse || res.Attempts != 10 || !strings.Contains(e.Message, "more than 10 pages") {
			t.Fatalf("11 pages: Domains = %+v, %+v; want bad_response after 10 attempts", res, e)
		}
	})
	t.Run("graph/never followed", func(t *testing.T) {
		srv := newServer(t, emulator.Config{SeedData: true})
		c := newClient(t, srv, connector.Graph)
		body := strings.Replace(successBody(connector.Graph, alertID, "first.example"), `{`,
			`{"@odata.nextLink":"`+srv.URL+`/v1.0/security/alerts_v2/da637200417169017725_183736971",`, 1)
		srv.Script(alertID, emulator.Answer{Body: body})
		res, err := c.Domains(t.Context(), alertID)
		if err != nil || !reflect.DeepEqual(res.Domains, []string{"first.example"}) || res.Attempts != 1 {
			t.Fatalf("Domains = %+v, %v; want [first.example] after 1 attempt", res, err)
		}
		if n := srv.Calls(); n != 1 {
			t.Errorf("emulator saw %d calls, want 1", n)
		}
	})
}

func TestLimiterUnderConcurrency(t *testing.T) {
	const callers, count, window = 50, 10, 200 * time.Millisecond
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{AnyAlert: true})
		rec := &recorder{}
		limiter := connector.NewLimiter([]connector.Limit{{Count: count, Window: window}})
		c := newClient(t, srv, api, connector.WithQuota(limiter), connector.WithObserver(rec))
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for i := range callers {
			wg.Go(func() {
				if _, err := c.Domains(t.Context(), fmt.Sprintf("alert_%d", i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// 50 calls at 10 per 200ms: the last ten may start 800ms after the first.
		if d := time.Since(start); d < (callers/count-1)*window {
			t.Errorf("50 calls took %s, faster than the limit allows", d)
		}
		waits := rec.quotaWaits()
		if len(waits) != callers {
			t.Fatalf("%d quota waits reported, want %d", len(waits), callers)
		}
		waited := 0
		for _, w := range waits {
			if w > 0 {
				waited++
			}
		}
		if waited < callers-count {
			t.Errorf("%d calls waited for the quota, want at least %d", waited, callers-count)
		}
		if n := limiter.Used(window); n > count {
			t.Errorf("Used = %d, more than %d", n, count)
		}
	})
}

// TestLimiterGuardsEveryAttempt: retries, the fresh token's call, every
// page on the endpoint API and the second form of an ID on Graph each wait
// for the quota and count against it.
func TestLimiterGuardsEveryAttempt(t *testing.T) {
	tests := []struct {
		api   connector.API
		other string // a second lookup
		calls int
	}{
		// The alert: 503, 401, then two pages; "paged": three pages.
		{api: connector.MDE, other: "paged", calls: 7},
		// The alert: 503, 401, then the alert; the endpoint ID: 404, then
		// its "da" form.
		{api: connector.Graph, other: "637612345678901234_1122334455", calls: 5},
	}
	for _, tt := range tests {
		t.Run(string(tt.api), func(t *testing.T) {
			srv := newServer(t, emulator.Config{Alerts: map[string][]string{"paged": {"a", "b", "c"}}, SeedData: true, PageSize: 1})
			rec := &recorder{}
			limiter := connector.NewLimiter([]connector.Limit{{Count: 1000, Window: time.Hour}})
			c := newClient(t, srv, tt.api, connector.WithQuota(limiter), connector.WithObserver(rec))
			srv.Script(alertID, emulator.Answer{Status: 503}, emulator.Answer{Status: 401})
			if _, err := c.Domains(t.Context(), alertID); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Domains(t.Context(), tt.other); err != nil {
				t.Fatal(err)
			}
			if used, calls := limiter.Used(time.Hour), srv.Calls(); used != calls || calls != tt.calls {
				t.Errorf("limiter counted %d calls, emulator saw %d, want %d", used, calls, tt.calls)
			}
			if n := len(rec.quotaWaits()); n != tt.calls {
				t.Errorf("%d quota waits reported, want %d", n, tt.calls)
			}
		})
	}
}

func TestCancelStopsWaits(t *testing.T) {
	tests := []struct {
		name  string
		setup func(srv *emulator.Server) []connector.Option
	}{
		{name: "backoff wait", setup: func(srv *emulator.Server) []connector.Option {
			srv.Script(alertID, emulator.Answer{Status: 429, Header: header("Retry-After", "60")})
			return []connector.Option{connector.WithBackoff(time.Second, time.Minute, time.Hour)}
		}},
		{name: "quota wait", setup: func(srv *emulator.Server) []connector.Option {
			srv.Script(alertID, emulator.Answer{Status: 503})
			return []connector.Option{connector.WithQuota(connector.NewLimiter([]connector.Limit{{Count: 1, Window: time.Hour}}))}
		}},
		{name: "slow body", setup: func(srv *emulator.Server) []connector.Option {
			srv.Script(alertID, emulator.Answer{Slow: true})
			return []connector.Option{connector.WithTimeout(time.Hour)}
		}},
		{name: "slow answer", setup: func(srv *emulator.Server) []connector.Option {
			srv.Script(alertID, emulator.Answer{Delay: time.Hour})
			return []connector.Option{connector.WithTimeout(time.Hour)}
		}},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				srv := newServer(t, emulator.Config{SeedData: true})
				rec := &recorder{calls: make(chan int, 10)}
				opts := append(tt.setup(srv), connector.WithObserver(rec))
				c := newClient(t, srv, api, opts...)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				done := make(chan error, 1)
				go func() {
					_, err := c.Domains(ctx, alertID)
					done <- err
				}()
				// Cancel once the emulator has the first call in hand.
				deadline := time.After(10 * time.Second)
				for srv.CallsFor(alertID) == 0 {
					select {
					case <-deadline:
						t.Fatal("no call reached the emulator")
					case <-time.After(time.Millisecond):
					}
				}
				cancel()
				start := time.Now()
				select {
				case err := <-done:
					if d := time.Since(start); d > 2*time.Second {
						t.Errorf("returned %s after the cancel", d)
					}
					e := asError(t, err)
					if e.Kind != message.KindUnavailable || !errors.Is(err, context.Canceled) {
						t.Errorf("error = %v, want unavailable wrapping context.Canceled", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Domains did not return after the cancel")
				}
			})
		}
	})
}

// TestWrongAudienceIsForbidden: a token for the other API is refused with
// 403, which names the permission the client's API needs.
func TestWrongAudienceIsForbidden(t *testing.T) {
	other := map[connector.API]connector.API{connector.Graph: connector.MDE, connector.MDE: connector.Graph}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		cred, err := connector.NewCredential(srv.Credential())
		if err != nil {
			t.Fatal(err)
		}
		c := newClientWith(t, srv, api, cred, emulator.ScopeOf(other[api]))
		res, err := c.Domains(t.Context(), alertID)
		e := asError(t, err)
		if e.Kind != message.KindForbidden || e.HTTPStatus != 403 || e.Code != "Forbidden" || res.Attempts != 1 {
			t.Fatalf("Domains = %+v, %+v; want forbidden", res, e)
		}
		if !strings.Contains(e.Message, api.Permission()) {
			t.Errorf("message %q does not name %s", e.Message, api.Permission())
		}
		if n := srv.CallsOf(other[api]); n != 0 {
			t.Errorf("%d calls went to %s", n, other[api])
		}
	})
}

func TestTokenFailures(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		t.Run("wrong secret", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			cfg := srv.Credential()
			cfg.ClientSecret = "not-the-secret"
			cred, err := connector.NewCredential(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := newClientWith(t, srv, api, cred, emulator.ScopeOf(api))
			res, err := c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindUnauthorized || e.HTTPStatus != 0 || res.Attempts != 0 || srv.Calls() != 0 {
				t.Fatalf("Domains = %+v, %+v; want unauthorized without a call", res, e)
			}
			if !strings.Contains(err.Error(), "AADSTS7000215") {
				t.Errorf("error %q does not carry Entra's reason", err)
			}
		})
		t.Run("regional scope", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			cred, err := connector.NewCredential(srv.Credential())
			if err != nil {
				t.Fatal(err)
			}
			scope := map[connector.API]string{
				connector.MDE:   "https://us.api.security.microsoft.com/.default",
				connector.Graph: "https://graph.microsoft.com/v1.0/.default",
			}[api]
			c := newClientWith(t, srv, api, cred, scope)
			_, err = c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindUnauthorized || !strings.Contains(err.Error(), "AADSTS500011") {
				t.Fatalf("error = %v, want unauthorized with AADSTS500011", err)
			}
		})
		t.Run("unknown tenant", func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true})
			cfg := srv.Credential()
			cfg.TenantID = "00000000-0000-0000-0000-00000000dead"
			cred, err := connector.NewCredential(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := newClientWith(t, srv, api, cred, emulator.ScopeOf(api))
			_, err = c.Domains(t.Context(), alertID)
			if e := asError(t, err); e.Kind != message.KindUnauthorized {
				t.Fatalf("error = %v, want unauthorized", err)
			}
		})
	})
}

func TestDefaultClientDoesNotFollowRedirects(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		var hits atomic.Int32
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_, _ = w.Write([]byte(successBody(api, alertID)))
		}))
		t.Cleanup(target.Close)
		ts := httptest.NewServer(http.RedirectHandler(target.URL+callPath(api, alertID), http.StatusFound))
		t.Cleanup(ts.Close)
		c, err := connector.New(api, ts.URL, staticCredential{"t"}, emulator.ScopeOf(api), connector.WithInsecureHTTP())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		_, err = c.Domains(t.Context(), alertID)
		if e := asError(t, err); e.Kind != message.KindBadResponse || e.HTTPStatus != 302 {
			t.Fatalf("error = %+v, want bad_response 302", e)
		}
		if hits.Load() != 0 {
			t.Error("the redirect was followed")
		}
	})
}

// cleanEndAfterCancel answers 200 with the start of a body that ends
// cleanly, but only once the request's context has ended: what a server
// may do when the client hangs up.
type cleanEndAfterCancel struct{ start string }

func (c cleanEndAfterCancel) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{},
		Body:       &endsAfter{ctx: req.Context(), data: []byte(c.start)},
	}, nil
}

type endsAfter struct {
	ctx  context.Context
	data []byte
}

func (b *endsAfter) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.ctx.Done()
	return 0, io.EOF
}

func (b *endsAfter) Close() error { return nil }

func TestBodyEndedByTimeoutIsUnavailable(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		// A cut answer that is still valid JSON up to where it ends would
		// pass for a whole one if the time-out were not noticed.
		start := map[connector.API]string{connector.MDE: `{"value":[`, connector.Graph: `{"id":"` + alertID + `","evidence":[`}[api]
		c, err := connector.New(api, "https://api.example", staticCredential{"t"}, emulator.ScopeOf(api),
			connector.WithHTTPClient(&http.Client{Transport: cleanEndAfterCancel{start}}),
			connector.WithTimeout(20*time.Millisecond),
			connector.WithBackoff(5*time.Millisecond, 10*time.Millisecond, 100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Domains(t.Context(), alertID)
		if e := asError(t, err); e.Kind != message.KindUnavailable || !errors.Is(err, context.DeadlineExceeded) || res.Attempts < 2 {
			t.Fatalf("Domains = %+v, %v; want unavailable (time-out) after retries", res, err)
		}
	})
}

// cooldownRecorder is a Quota that grants at once and records cooldowns.
type cooldownRecorder struct {
	mu        sync.Mutex
	acquired  int
	cooldowns []time.Duration
}

func (q *cooldownRecorder) Acquire(context.Context) (func(), time.Duration, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.acquired++
	return func() {}, 0, nil
}

func (q *cooldownRecorder) Cooldown(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cooldowns = append(q.cooldowns, d)
}

func TestQuotaToldOfRetryAfter(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newServer(t, emulator.Config{SeedData: true})
		q := &cooldownRecorder{}
		c := newClient(t, srv, api, connector.WithQuota(q), connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, 5*time.Second))
		srv.Script(alertID, emulator.Answer{Status: 429, Header: http.Header{"Retry-After": {"1"}}, Body: errorBody(api, "TooManyRequests")})
		if _, err := c.Domains(t.Context(), alertID); err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		if len(q.cooldowns) != 1 || q.cooldowns[0] != time.Second {
			t.Errorf("cooldowns reported %v, want [1s]", q.cooldowns)
		}
		if q.acquired != 2 {
			t.Errorf("quota acquired %d times, want 2", q.acquired)
		}
	})
}
