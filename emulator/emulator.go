// Package emulator runs a fake Microsoft Graph security API, Defender for
// Endpoint API and Entra ID token service that speak the real wire formats,
// like net/http/httptest: tests and `alert-domains emulate` use it. Routes:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/discovery/v2.0/keys
//	POST /{tenant}/oauth2/v2.0/token    client credentials (secret or JWT assertion)
//	GET  /{v1.0,beta}/security/alerts_v2/{id}, /api/{,v1.0/}alerts/{id}/domains
//
// An alert call checks the token (401, 403), then answers a Script, the
// outage, 429 over Config.Quota, after Config.Latency a 503 by
// Config.FaultRate, then the data. A LoadData file is {"alerts": {"<id>": ["host", ...]}}.
package emulator

import (
	"cmp"
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
	cfg Config // with defaults; read only

	mu           sync.Mutex
	permissions  []string
	quota        map[connector.API]*connector.Limiter
	rng          *mrand.Rand
	alerts       map[string][]string
	scripts      map[string][]Answer
	tokenScripts []Answer
	outage       int
	tokens       map[string]issued
	tokensIssued int
	tokenClaims  int
	callsFor     map[string]int
	callsOf      map[connector.API]int
	callTimes    []time.Time
	answered     map[int]int

	tracking  atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once
}

// Config is what an Emulator serves; the zero Config serves the default
// tenant, grants both APIs' permissions and knows no alert.
type Config struct {
	// TenantID, ClientID and ClientSecret are what the token endpoint
	// accepts; the Default ones when empty.
	TenantID, ClientID, ClientSecret string

	// Permissions are granted to tokens; an API answers 403 without its own.
	// Nil grants GraphPermission and MDEPermission, empty grants none.
	Permissions []string

	Quota         []connector.Limit   // calls over these limits answer 429 with Retry-After, per API
	Latency       time.Duration       // delays every alert call that reaches the data
	FaultRate     float64             // the fraction of alert calls answered 503
	FaultSeed     int64               // seeds the choice of those calls
	Alerts        map[string][]string // alerts with their hosts (none: an alert without domains)
	SeedData      bool                // adds the alerts of SeedData, under Alerts
	AnyAlert      bool                // answers an unknown valid alert ID with 1 to 3 hosts made from it
	TokenLifetime time.Duration       // the expires_in of issued tokens; DefaultTokenLifetime when 0
	PageSize      int                 // splits the endpoint API's answers into pages of this many hosts
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
func NewHandler(cfg Config) *Emulator {
	cfg.TenantID = cmp.Or(cfg.TenantID, DefaultTenantID)
	cfg.ClientID = cmp.Or(cfg.ClientID, DefaultClientID)
	cfg.ClientSecret = cmp.Or(cfg.ClientSecret, DefaultClientSecret)
	cfg.TokenLifetime = cmp.Or(cfg.TokenLifetime, DefaultTokenLifetime)
	if cfg.Permissions == nil {
		cfg.Permissions = []string{GraphPermission, MDEPermission}
	}
	e := &Emulator{
		cfg:         cfg,
		permissions: slices.Clone(cfg.Permissions),
		quota: map[connector.API]*connector.Limiter{
			connector.Graph: connector.NewLimiter(cfg.Quota),
			connector.MDE:   connector.NewLimiter(cfg.Quota),
		},
		rng:      mrand.New(mrand.NewSource(cfg.FaultSeed)),
		alerts:   map[string][]string{},
		scripts:  map[string][]Answer{},
		tokens:   map[string]issued{},
		callsFor: map[string]int{},
		callsOf:  map[connector.API]int{},
		answered: map[int]int{},
		done:     make(chan struct{}),
	}
	if cfg.SeedData {
		e.alerts = SeedData()
	}
	maps.Copy(e.alerts, cfg.Alerts)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.inTenant(e.openIDConfiguration))
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", e.inTenant(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
	}))
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.inTenant(e.token))
	graph := func(w http.ResponseWriter, r *http.Request) { e.alert(w, r, connector.Graph) }
	mux.HandleFunc("GET /v1.0/security/alerts_v2/{id}", graph)
	mux.HandleFunc("GET /beta/security/alerts_v2/{id}", graph)
	mde := func(w http.ResponseWriter, r *http.Request) { e.alert(w, r, connector.MDE) }
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
func (e *Emulator) TenantID() string { return e.cfg.TenantID }

// ClientID is the app the token endpoint accepts.
func (e *Emulator) ClientID() string { return e.cfg.ClientID }

// ClientSecret is the secret the token endpoint accepts.
func (e *Emulator) ClientSecret() string { return e.cfg.ClientSecret }

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

const maxCallTimes = 100_000

// CallTimes are the arrival times of the last alert calls, in order.
func (e *Emulator) CallTimes() []time.Time {
	return locked(e, func() []time.Time { return append([]time.Time(nil), e.callTimes...) })
}

// Answered is the number of alert calls answered with status.
func (e *Emulator) Answered(status int) int {
	return locked(e, func() int { return e.answered[status] })
}

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
	e.with(func() { maps.Copy(e.alerts, data.Alerts) })
	return nil
}
