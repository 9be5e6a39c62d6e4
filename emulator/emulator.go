// Package emulator runs a fake Microsoft Graph security API, Defender for
// Endpoint API and Entra ID token service that speak the real wire formats,
// like net/http/httptest: tests and `alert-domains emulate` use it. Routes:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/discovery/v2.0/keys
//	POST /{tenant}/oauth2/v2.0/token    client credentials (secret or JWT assertion)
//	GET  /{v1.0,beta}/security/alerts_v2/{id}, /api/{,v1.0/}alerts/{id}/domains
//
// An alert call checks the token (401, 403), then answers a Script, the
// outage, 429 over WithQuota, after WithLatency a 503 by WithFaultRate, then
// the data. A LoadData file is {"alerts": {"<id>": ["host", ...]}}.
package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	mrand "math/rand"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// The credentials the token endpoint accepts by default.
const (
	DefaultTenantID     = "00000000-0000-0000-0000-000000000001"
	DefaultClientID     = "00000000-0000-0000-0000-000000000002"
	DefaultClientSecret = "emulator-secret"
)

// Token scopes of the public cloud's endpoint API and Graph.
const (
	Scope      = "https://api.securitycenter.microsoft.com/.default"
	GraphScope = "https://graph.microsoft.com/.default"
)

// ScopeOf is the public cloud's token scope of api.
func ScopeOf(api connector.API) string {
	if api == connector.MDE {
		return Scope
	}
	return GraphScope
}

// The application permissions each API asks of a token.
const (
	GraphPermission = "SecurityAlert.Read.All"
	MDEPermission   = "URL.Read.All"
)

// DefaultTokenLifetime is the lifetime of an issued token, as Entra's.
const DefaultTokenLifetime = 3599 * time.Second

// Emulator is the http.Handler of the fake APIs and Entra ID.
type Emulator struct {
	mux *http.ServeMux

	mu            sync.Mutex
	tenantID      string
	clientID      string
	clientSecret  string
	permissions   []string
	tokenLifetime time.Duration
	quota         map[connector.API]*connector.Limiter
	latency       time.Duration
	faultRate     float64
	rng           *mrand.Rand
	alerts        map[string][]string
	anyAlert      bool
	pageSize      int
	scripts       map[string][]Answer
	tokenScripts  []Answer
	outage        int
	tokens        map[string]issued
	tokensIssued  int
	tokenClaims   int
	callsFor      map[string]int
	callsOf       map[connector.API]int
	callTimes     []time.Time
	answered      map[int]int

	tracking  atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once
}

// issued is a token the emulator handed out.
type issued struct {
	expires time.Time
	api     connector.API // the API of its audience; "" for another one (403)
	roles   []string
}

// Answer is a scripted answer to one alert call.
type Answer struct {
	Status    int         // 0 means 200
	Body      string      // sent as is
	Header    http.Header // added to the answer
	Delay     time.Duration
	BodyBytes int64 // > 0: a body of about this many bytes (a valid answer with one huge host)
	NoLength  bool  // with BodyBytes: no Content-Length (a chunked or compressed answer)
	Slow      bool  // a body that trickles forever, until the client gives up
	EchoForm  bool  // ScriptToken: append the request's form, secret and all, to Body
}

// Option configures an Emulator.
type Option func(*Emulator)

// WithTenant sets the tenant, client and secret the token endpoint accepts.
func WithTenant(tenantID, clientID, clientSecret string) Option {
	return func(e *Emulator) { e.tenantID, e.clientID, e.clientSecret = tenantID, clientID, clientSecret }
}

// WithPermissions sets the permissions granted; an API answers 403 without its own.
func WithPermissions(perms ...string) Option {
	return func(e *Emulator) { e.permissions = append([]string{}, perms...) }
}

// WithQuota answers calls over limits 429 with Retry-After, per API.
func WithQuota(limits ...connector.Limit) Option {
	return func(e *Emulator) {
		e.quota = map[connector.API]*connector.Limiter{
			connector.Graph: connector.NewLimiter(limits),
			connector.MDE:   connector.NewLimiter(limits),
		}
	}
}

// WithLatency delays every alert call that reaches the data by d.
func WithLatency(d time.Duration) Option {
	return func(e *Emulator) { e.latency = d }
}

// WithFaultRate answers a fraction p of the alert calls with 503, seeded.
func WithFaultRate(p float64, seed int64) Option {
	return func(e *Emulator) { e.faultRate, e.rng = p, mrand.New(mrand.NewSource(seed)) }
}

// WithAlert adds an alert with its hosts (none is an alert without domains).
func WithAlert(id string, hosts ...string) Option {
	return func(e *Emulator) { e.alerts[id] = append([]string{}, hosts...) }
}

// WithAnyAlert answers an unknown valid alert ID with 1 to 3 hosts made from it.
func WithAnyAlert() Option {
	return func(e *Emulator) { e.anyAlert = true }
}

// WithSeedData adds a small built-in data set, the alerts of SeedData.
func WithSeedData() Option {
	return func(e *Emulator) { maps.Copy(e.alerts, SeedData()) }
}

// WithTokenLifetime sets the expires_in of issued tokens (default 3599s).
func WithTokenLifetime(d time.Duration) Option {
	return func(e *Emulator) { e.tokenLifetime = d }
}

// WithPageSize splits the endpoint API's answers into pages of n hosts.
func WithPageSize(n int) Option {
	return func(e *Emulator) { e.pageSize = n }
}

// SeedData is the built-in data set.
func SeedData() map[string][]string {
	return map[string][]string{
		"da637472900382838869_1364969609": {"www.example.com", "cdn.example.net"},
		"636688558380765161_2136280442":   {},
		"da637200417169017725_183736971":  {"login.example.org"},
		"da637551227677560813_-961444813": {"update.example.com", "telemetry.example.net", "update.example.com"},
		"da637600000000000000_1000000001": {"files.example.io", "api.example.io", "cdn.example.io", "www.example.io"},
		"637612345678901234_1122334455":   {"portal.example.net", "mail.example.net"},
	}
}

// NewHandler returns an emulator to serve over HTTPS on one's own listener.
func NewHandler(opts ...Option) *Emulator {
	e := &Emulator{
		tenantID:      DefaultTenantID,
		clientID:      DefaultClientID,
		clientSecret:  DefaultClientSecret,
		permissions:   []string{GraphPermission, MDEPermission},
		tokenLifetime: DefaultTokenLifetime,
		rng:           mrand.New(mrand.NewSource(1)),
		alerts:        map[string][]string{},
		scripts:       map[string][]Answer{},
		tokens:        map[string]issued{},
		callsFor:      map[string]int{},
		callsOf:       map[connector.API]int{},
		answered:      map[int]int{},
		done:          make(chan struct{}),
	}
	for _, opt := range opts {
		opt(e)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.openIDConfiguration)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", e.keys)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.token)
	graph := e.alertCall(connector.Graph)
	mux.HandleFunc("GET /v1.0/security/alerts_v2/{id}", graph)
	mux.HandleFunc("GET /beta/security/alerts_v2/{id}", graph)
	mde := e.alertCall(connector.MDE)
	mux.HandleFunc("GET /api/alerts/{id}/domains", mde)
	mux.HandleFunc("GET /api/v1.0/alerts/{id}/domains", mde)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	e.mux = mux
	return e
}

// ServeHTTP serves the emulator's routes.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

// Close ends delayed and slow answers in progress.
func (e *Emulator) Close() { e.closeOnce.Do(func() { close(e.done) }) }

// TenantID is the tenant the token endpoint accepts.
func (e *Emulator) TenantID() string { return e.tenantID }

// ClientID is the app the token endpoint accepts.
func (e *Emulator) ClientID() string { return e.clientID }

// ClientSecret is the secret the token endpoint accepts.
func (e *Emulator) ClientSecret() string { return e.clientSecret }

// Script queues answers for the next calls for alert id, on either API.
func (e *Emulator) Script(id string, answers ...Answer) {
	e.with(func() { e.scripts[id] = append(e.scripts[id], answers...) })
}

// ScriptToken queues answers for the next token requests.
func (e *Emulator) ScriptToken(answers ...Answer) {
	e.with(func() { e.tokenScripts = append(e.tokenScripts, answers...) })
}

// SetOutage answers every alert call with status, until SetOutage(0).
func (e *Emulator) SetOutage(status int) { e.with(func() { e.outage = status }) }

// SetPermissions replaces the permissions granted to tokens issued from now on.
func (e *Emulator) SetPermissions(perms ...string) {
	e.with(func() { e.permissions = append([]string{}, perms...) })
}

// ExpireTokens revokes every token issued so far: the APIs answer 401.
func (e *Emulator) ExpireTokens() { e.with(func() { clear(e.tokens) }) }

// Calls is the number of alert calls received, on both APIs.
func (e *Emulator) Calls() int {
	return locked(e, func() int { return e.callsOf[connector.Graph] + e.callsOf[connector.MDE] })
}

// CallsOf is the number of alert calls api received.
func (e *Emulator) CallsOf(api connector.API) int {
	return locked(e, func() int { return e.callsOf[api] })
}

// CallsFor is the number of alert calls received for id, as asked.
func (e *Emulator) CallsFor(id string) int { return locked(e, func() int { return e.callsFor[id] }) }

// TokensIssued is the number of tokens the token endpoint handed out.
func (e *Emulator) TokensIssued() int { return locked(e, func() int { return e.tokensIssued }) }

// TokensForClaims is how many tokens were issued for a claims challenge.
func (e *Emulator) TokensForClaims() int { return locked(e, func() int { return e.tokenClaims }) }

// maxCallTimes bounds the call times kept.
const maxCallTimes = 100_000

// CallTimes are the arrival times of the last alert calls, in order.
func (e *Emulator) CallTimes() []time.Time {
	return locked(e, func() []time.Time { return append([]time.Time(nil), e.callTimes...) })
}

// Answered is the number of alert calls answered with status.
func (e *Emulator) Answered(status int) int {
	return locked(e, func() int { return e.answered[status] })
}

// with runs f under the emulator's lock.
func (e *Emulator) with(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f()
}

// locked returns f's value, read under the emulator's lock.
func locked[T any](e *Emulator, f func() T) T {
	e.mu.Lock()
	defer e.mu.Unlock()
	return f()
}

// LoadData adds the alerts of a data file (see the package documentation).
func (e *Emulator) LoadData(r io.Reader) error {
	var data struct {
		Alerts map[string][]string `json:"alerts"`
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&data); err != nil {
		return fmt.Errorf("emulator: data: %w", err)
	}
	if data.Alerts == nil {
		return fmt.Errorf(`emulator: data: no "alerts" object`)
	}
	for id, hosts := range data.Alerts {
		if err := message.ValidateAlertID(id); err != nil {
			return fmt.Errorf("emulator: data: alert %q: %w", id, err)
		}
		if slices.Contains(hosts, "") {
			return fmt.Errorf("emulator: data: alert %q: empty host", id)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, hosts := range data.Alerts {
		e.alerts[id] = append([]string{}, hosts...)
	}
	return nil
}
