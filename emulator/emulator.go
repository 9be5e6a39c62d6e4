// Package emulator runs a fake Microsoft Defender for Endpoint API and
// Entra ID token service that speak the real wire format, in the spirit of
// net/http/httptest: tests (and `alert-domains emulate`) use it instead of a
// tenant.
//
// One HTTPS origin serves both:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration   Entra discovery (issuer, token endpoint, ...)
//	GET  /{tenant}/discovery/v2.0/keys                     an empty key set
//	POST /{tenant}/oauth2/v2.0/token                       client credentials (secret or client assertion)
//	GET  /api/alerts/{id}/domains                          the domains call
//	GET  /api/v1.0/alerts/{id}/domains                     the same
//
// Any other path answers 404 with an empty body, as Defender does. Point an
// azidentity credential at it with AuthorityHost = URL + "/" (instance
// discovery off, which connector.NewCredential does for any host that is
// not Microsoft's) and the connector at URL.
//
// The token endpoint accepts the configured tenant, client and secret (or
// any well-formed JWT client assertion, for certificate and workload
// identity credentials) and a scope of "{resource}/.default" for a Defender
// resource (https://api.securitycenter.microsoft.com and the other clouds'
// hosts); https://graph.microsoft.com/.default yields a token Defender
// answers with 403, a regional host 400 AADSTS500011, as Entra does. Its
// scripted answers (ScriptToken) come first: hostile errors that echo the
// request's form, malformed tokens. It counts the tokens issued for a
// request with a claims challenge (TokensForClaims), the way a client asks
// for a token that is not from its cache.
//
// The domains call checks the bearer token (401 when missing, unknown or
// expired), then answers, in this order: a scripted answer for the alert
// (Script), the outage status (SetOutage), 429 with Retry-After when its own
// quota is exceeded (WithQuota), after the latency (WithLatency) a 503 for
// the fault rate (WithFaultRate), and then the data: 200 with the alert's
// hosts, or 404 ResourceNotFound for an alert it does not know.
//
// A data file for LoadData (and `alert-domains emulate -data`) maps alert
// IDs to their hosts:
//
//	{"alerts": {"da637472900382838869_1364969609": ["www.example.com", "cdn.example.net"],
//	            "636688558380765161_2136280442": []}}
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	mrand "math/rand"
	"net/http"
	"strconv"
	"strings"
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

// Scope is the token scope of the public cloud's Defender API, which the
// emulator accepts.
const Scope = "https://api.securitycenter.microsoft.com/.default"

// DefaultTokenLifetime is the lifetime of an issued token, as Entra's.
const DefaultTokenLifetime = 3599 * time.Second

// Emulator is the http.Handler of the fake Defender and Entra ID, and its
// state. Its methods are safe for concurrent use.
type Emulator struct {
	mux *http.ServeMux

	mu            sync.Mutex
	tenantID      string
	clientID      string
	clientSecret  string
	tokenLifetime time.Duration
	quota         *connector.Limiter
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
	calls         int
	callsFor      map[string]int
	callTimes     []time.Time
	answered      map[int]int

	tracking  atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once
}

// issued is a token the emulator handed out.
type issued struct {
	expires  time.Time
	defender bool // for the Defender API; false: another audience (403)
}

// Answer is a scripted answer to one domains call.
type Answer struct {
	Status    int         // 0 means 200
	Body      string      // sent as is
	Header    http.Header // added to the answer
	Delay     time.Duration
	BodyBytes int64 // > 0: a body of about this many bytes (a valid answer with one huge host)
	NoLength  bool  // with BodyBytes: no Content-Length (a chunked or compressed answer)
	Slow      bool  // a body that trickles forever, until the client gives up
	// EchoForm appends the request's form, as received, to Body: an
	// error answer of the token endpoint that quotes the client secret or
	// the client assertion (ScriptToken).
	EchoForm bool
}

// Option configures an Emulator.
type Option func(*Emulator)

// WithTenant sets the tenant, client and secret that the token endpoint
// accepts.
func WithTenant(tenantID, clientID, clientSecret string) Option {
	return func(e *Emulator) { e.tenantID, e.clientID, e.clientSecret = tenantID, clientID, clientSecret }
}

// WithQuota gives the emulator Defender's kind of quota: over any limit, a
// call is answered 429 TooManyRequests with Retry-After in seconds (rounded
// up) until a slot frees. Answered calls count; refused ones do not.
func WithQuota(limits ...connector.Limit) Option {
	return func(e *Emulator) { e.quota = connector.NewLimiter(limits) }
}

// WithLatency delays every domains call that reaches the data by d.
func WithLatency(d time.Duration) Option {
	return func(e *Emulator) { e.latency = d }
}

// WithFaultRate answers a fraction p of the domains calls with 503, drawn
// from a generator seeded with seed.
func WithFaultRate(p float64, seed int64) Option {
	return func(e *Emulator) { e.faultRate, e.rng = p, mrand.New(mrand.NewSource(seed)) }
}

// WithAlert adds an alert with its hosts (none is an empty answer).
func WithAlert(id string, hosts ...string) Option {
	return func(e *Emulator) { e.alerts[id] = append([]string{}, hosts...) }
}

// WithAnyAlert answers every valid alert ID it does not know with 1 to 3
// hosts derived from the ID, the same every time.
func WithAnyAlert() Option {
	return func(e *Emulator) { e.anyAlert = true }
}

// WithSeedData adds a small built-in data set, the alerts of SeedData.
func WithSeedData() Option {
	return func(e *Emulator) {
		for id, hosts := range SeedData() {
			e.alerts[id] = hosts
		}
	}
}

// WithTokenLifetime sets the expires_in of issued tokens (default 3599s).
func WithTokenLifetime(d time.Duration) Option {
	return func(e *Emulator) { e.tokenLifetime = d }
}

// WithPageSize splits answers of more than n hosts into pages linked by
// @odata.nextLink.
func WithPageSize(n int) Option {
	return func(e *Emulator) { e.pageSize = n }
}

// SeedData is the built-in data set: real-looking alert IDs with their
// hosts. One alert has no domains, one lists a host twice.
func SeedData() map[string][]string {
	return map[string][]string{
		"da637472900382838869_1364969609": {"www.example.com", "cdn.example.net"},
		"636688558380765161_2136280442":   {},
		"da637200417169017725_183736971":  {"login.example.org"},
		"da637551227677560813_-961444813": {"update.example.com", "telemetry.example.net", "update.example.com"},
		"da637600000000000000_1000000001": {"files.example.io", "api.example.io", "cdn.example.io", "www.example.io"},
	}
}

// NewHandler returns an emulator to serve on a listener of one's own (it
// must be HTTPS for azidentity to talk to it).
func NewHandler(opts ...Option) *Emulator {
	e := &Emulator{
		tenantID:      DefaultTenantID,
		clientID:      DefaultClientID,
		clientSecret:  DefaultClientSecret,
		tokenLifetime: DefaultTokenLifetime,
		rng:           mrand.New(mrand.NewSource(1)),
		alerts:        map[string][]string{},
		scripts:       map[string][]Answer{},
		tokens:        map[string]issued{},
		callsFor:      map[string]int{},
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
	mux.HandleFunc("GET /api/alerts/{id}/domains", e.domains)
	mux.HandleFunc("GET /api/v1.0/alerts/{id}/domains", e.domains)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	e.mux = mux
	return e
}

// ServeHTTP serves the emulator's routes.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

// Close ends delayed and slow answers in progress, so that a server can
// shut down. The emulator answers at once from then on.
func (e *Emulator) Close() { e.closeOnce.Do(func() { close(e.done) }) }

// TenantID, ClientID and ClientSecret are the credentials the token
// endpoint accepts.
func (e *Emulator) TenantID() string { return e.tenantID }

// ClientID is the app the token endpoint accepts.
func (e *Emulator) ClientID() string { return e.clientID }

// ClientSecret is the secret the token endpoint accepts.
func (e *Emulator) ClientSecret() string { return e.clientSecret }

// Script queues answers for the alert's next domains calls, used in order
// before its normal behaviour.
func (e *Emulator) Script(id string, answers ...Answer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scripts[id] = append(e.scripts[id], answers...)
}

// ScriptToken queues answers for the next token requests, used in order
// before the token endpoint's normal behaviour (after the tenant check):
// hostile error answers and malformed tokens. Status, Header, Body and
// EchoForm apply.
func (e *Emulator) ScriptToken(answers ...Answer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokenScripts = append(e.tokenScripts, answers...)
}

// SetOutage answers every domains call with status (with a JSON error
// body), until SetOutage(0).
func (e *Emulator) SetOutage(status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outage = status
}

// SetLatency changes the latency of domains calls.
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.latency = d
}

// SetFaultRate changes the fraction of domains calls answered 503.
func (e *Emulator) SetFaultRate(p float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faultRate = p
}

// ExpireTokens makes every token issued so far invalid, as if it had
// expired or been revoked (a password reset, a disabled app, continuous
// access evaluation): the domains call answers 401 to it, however long it
// had left to live.
func (e *Emulator) ExpireTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.tokens)
}

// Calls is the number of domains calls received.
func (e *Emulator) Calls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

// CallsFor is the number of domains calls received for one alert.
func (e *Emulator) CallsFor(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.callsFor[id]
}

// TokensIssued is the number of tokens the token endpoint handed out.
func (e *Emulator) TokensIssued() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokensIssued
}

// TokensForClaims is how many of those tokens were issued for a request
// with a claims challenge (the "claims" parameter), which a client sends to
// get a new token rather than one from its cache.
func (e *Emulator) TokensForClaims() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokenClaims
}

// maxCallTimes bounds the call times kept, so a long-running emulator does
// not grow without end.
const maxCallTimes = 100_000

// CallTimes are the arrival times of the domains calls, in order (at
// least the last 100000 of them).
func (e *Emulator) CallTimes() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.callTimes...)
}

// Answered is the number of domains calls answered with status.
func (e *Emulator) Answered(status int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.answered[status]
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
		for _, h := range hosts {
			if h == "" {
				return fmt.Errorf("emulator: data: alert %q: empty host", id)
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, hosts := range data.Alerts {
		e.alerts[id] = append([]string{}, hosts...)
	}
	return nil
}

// baseURL is the origin the request came to.
func baseURL(r *http.Request) string {
	if r.TLS == nil {
		return "http://" + r.Host
	}
	return "https://" + r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// entraError is an OAuth error answer of Entra ID.
func entraError(w http.ResponseWriter, status int, code, aadsts, text string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": aadsts + ": " + text,
		"error_codes":       []int{aadstsNumber(aadsts)},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
	})
}

func aadstsNumber(s string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(s, "AADSTS"))
	return n
}

func (e *Emulator) knownTenant(w http.ResponseWriter, r *http.Request) bool {
	if strings.EqualFold(r.PathValue("tenant"), e.tenantID) {
		return true
	}
	entraError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002",
		fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID.", r.PathValue("tenant")))
	return false
}

func (e *Emulator) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	if !e.knownTenant(w, r) {
		return
	}
	base, tenant := baseURL(r), r.PathValue("tenant")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/" + tenant + "/v2.0",
		"authorization_endpoint":                base + "/" + tenant + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/" + tenant + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         base + "/" + tenant + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/" + tenant + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/" + tenant + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"request_uri_parameter_supported":       false,
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

func (e *Emulator) keys(w http.ResponseWriter, r *http.Request) {
	if !e.knownTenant(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// defenderResource reports whether a token for resource is accepted by the
// Defender API; known is false for a resource Entra does not know.
func defenderResource(resource string) (defender, known bool) {
	switch strings.ToLower(strings.TrimSuffix(resource, "/")) {
	case "https://api.securitycenter.microsoft.com",
		"https://api.security.microsoft.com",
		"https://securitycenter.onmicrosoft.com/windowsatpservice",
		"https://api-gcc.securitycenter.microsoft.us",
		"https://api-gov.securitycenter.microsoft.us",
		"https://securitycenter.onmicrosoft.us/windowsatpservice",
		"fc780465-2017-40d4-a0c5-307022471b92":
		return true, true
	case "https://graph.microsoft.com", "https://management.azure.com":
		return false, true
	}
	return false, false
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	if !e.knownTenant(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144", "The request body must be a form.")
		return
	}
	f := r.PostForm
	e.mu.Lock()
	var script *Answer
	if len(e.tokenScripts) > 0 {
		script = &e.tokenScripts[0]
		e.tokenScripts = e.tokenScripts[1:]
	}
	e.mu.Unlock()
	if script != nil {
		status := script.Status
		if status == 0 {
			status = http.StatusOK
		}
		body := script.Body
		if script.EchoForm {
			body += f.Encode()
		}
		for k, vs := range script.Header {
			w.Header()[k] = append([]string(nil), vs...)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return
	}
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003",
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	if f.Get("client_id") != e.clientID {
		entraError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016",
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", f.Get("client_id"), e.tenantID))
		return
	}
	switch {
	case f.Has("client_secret"):
		if subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(e.clientSecret)) != 1 {
			entraError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215",
				"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
			return
		}
	case f.Has("client_assertion"):
		if f.Get("client_assertion_type") != jwtBearer || !looksLikeJWT(f.Get("client_assertion")) {
			entraError(w, http.StatusUnauthorized, "invalid_client", "AADSTS50027", "JWT token is invalid or malformed.")
			return
		}
	default:
		entraError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000216",
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	}
	var resource string
	for s := range strings.FieldsSeq(f.Get("scope")) {
		if strings.HasSuffix(s, "/.default") {
			resource = strings.TrimSuffix(s, "/.default")
		}
	}
	if resource == "" {
		entraError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012",
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope")))
		return
	}
	defender, known := defenderResource(resource)
	if !known {
		entraError(w, http.StatusBadRequest, "invalid_resource", "AADSTS500011",
			fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, e.tenantID))
		return
	}

	claims := f.Get("claims")
	if claims != "" && !json.Valid([]byte(claims)) {
		entraError(w, http.StatusBadRequest, "invalid_request", "AADSTS90014",
			"The claims parameter is not valid JSON.")
		return
	}

	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := "emu." + base64.RawURLEncoding.EncodeToString(raw[:])
	e.mu.Lock()
	now := time.Now()
	for t, it := range e.tokens {
		if now.After(it.expires) {
			delete(e.tokens, t)
		}
	}
	e.tokens[tok] = issued{expires: now.Add(e.tokenLifetime), defender: defender}
	e.tokensIssued++
	if claims != "" {
		e.tokenClaims++
	}
	life := int(e.tokenLifetime / time.Second)
	e.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     life,
		"ext_expires_in": life,
		"access_token":   tok,
	})
}

func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts[:2] {
		if p == "" {
			return false
		}
	}
	return true
}

// defenderError writes Defender's error body.
func (e *Emulator) defenderError(w http.ResponseWriter, status int, code, message string) {
	e.count(status)
	writeJSON(w, status, map[string]any{"error": map[string]string{
		"code":    code,
		"message": message,
		"target":  e.trackingID(),
	}})
}

func (e *Emulator) trackingID() string {
	n := e.tracking.Add(1)
	return fmt.Sprintf("e0000000-0000-4000-8000-%012x", n)
}

func (e *Emulator) count(status int) {
	e.mu.Lock()
	e.answered[status]++
	e.mu.Unlock()
}

// errorCode is the error.code Defender sends with status.
func errorCode(status int) string {
	switch {
	case status == http.StatusBadRequest:
		return "BadRequest"
	case status == http.StatusUnauthorized:
		return "Unauthorized"
	case status == http.StatusForbidden:
		return "Forbidden"
	case status == http.StatusNotFound:
		return "ResourceNotFound"
	case status == http.StatusTooManyRequests:
		return "TooManyRequests"
	case status >= 500:
		return "InternalServerError"
	}
	return "BadRequest"
}

func (e *Emulator) domains(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := time.Now()
	e.mu.Lock()
	e.calls++
	e.callsFor[id]++
	e.callTimes = append(e.callTimes, now)
	if len(e.callTimes) >= 2*maxCallTimes {
		e.callTimes = append(e.callTimes[:0], e.callTimes[len(e.callTimes)-maxCallTimes:]...)
	}
	tok, hasTok := e.tokens[bearerToken(r)]
	e.mu.Unlock()

	switch {
	case !hasTok || now.After(tok.expires):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		e.defenderError(w, http.StatusUnauthorized, "Unauthorized", "Access token is missing, invalid or expired.")
		return
	case !tok.defender:
		e.defenderError(w, http.StatusForbidden, "Forbidden", "The access token has a wrong audience.")
		return
	}

	e.mu.Lock()
	var script *Answer
	if q := e.scripts[id]; len(q) > 0 {
		a := q[0]
		script = &a
		if len(q) == 1 {
			delete(e.scripts, id)
		} else {
			e.scripts[id] = q[1:]
		}
	}
	outage := e.outage
	e.mu.Unlock()

	if script != nil {
		e.serveAnswer(w, r, *script)
		return
	}
	if outage != 0 {
		e.defenderError(w, outage, errorCode(outage), "The service is unavailable.")
		return
	}
	if ok, retryIn := e.quota.Allow(); !ok {
		secs := int((retryIn + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		e.defenderError(w, http.StatusTooManyRequests, "TooManyRequests", "API calls quota exceeded! Maximum allowed is the configured rate.")
		return
	}

	e.mu.Lock()
	latency := e.latency
	fault := e.faultRate > 0 && e.rng.Float64() < e.faultRate
	hosts, known := e.alerts[id]
	anyAlert, pageSize := e.anyAlert, e.pageSize
	e.mu.Unlock()

	if latency > 0 && !e.pause(r.Context(), latency) {
		abort()
	}
	if fault {
		e.defenderError(w, http.StatusServiceUnavailable, "InternalServerError", "An unexpected error occurred. Try again later.")
		return
	}
	if message.ValidateAlertID(id) != nil {
		e.defenderError(w, http.StatusBadRequest, "InvalidInput", "The alert id is not valid.")
		return
	}
	if !known {
		if !anyAlert {
			e.defenderError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Alert %s was not found", id))
			return
		}
		hosts = syntheticHosts(id)
	}

	type entry struct {
		Host string `json:"host"`
	}
	answer := struct {
		Context  string  `json:"@odata.context"`
		Value    []entry `json:"value"`
		NextLink string  `json:"@odata.nextLink,omitempty"`
	}{Context: "https://api.securitycenter.microsoft.com/api/$metadata#Domains", Value: []entry{}}
	if pageSize > 0 && len(hosts) > pageSize {
		skip, _ := strconv.Atoi(r.URL.Query().Get("$skip"))
		skip = min(max(skip, 0), len(hosts))
		end := min(skip+pageSize, len(hosts))
		if end < len(hosts) {
			answer.NextLink = baseURL(r) + r.URL.EscapedPath() + "?$skip=" + strconv.Itoa(end)
		}
		hosts = hosts[skip:end]
	}
	for _, h := range hosts {
		answer.Value = append(answer.Value, entry{h})
	}
	e.count(http.StatusOK)
	writeJSON(w, http.StatusOK, answer)
}

func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// syntheticHosts are the 1 to 3 hosts of an alert WithAnyAlert makes up.
func syntheticHosts(id string) []string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	sum := h.Sum64()
	tlds := [...]string{"example.com", "example.net", "example.org", "example.io"}
	hosts := make([]string, 1+sum%3)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%06x-%d.%s", (sum>>8)&0xffffff, i, tlds[(sum>>(16+4*i))%4])
	}
	return hosts
}

// pause waits d, or until the client leaves or the emulator closes.
func (e *Emulator) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-e.done:
	}
	return false
}

// abort ends a handler whose client left (or whose emulator closed) before
// any answer: the connection is cut with no status at all. A plain return
// would let net/http send an empty 200, which a client still reading could
// take for Defender's answer.
func abort() { panic(http.ErrAbortHandler) }

func (e *Emulator) serveAnswer(w http.ResponseWriter, r *http.Request, a Answer) {
	if a.Delay > 0 && !e.pause(r.Context(), a.Delay) {
		abort()
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	for k, vs := range a.Header {
		w.Header()[k] = append([]string(nil), vs...)
	}
	jsonBody := strings.HasPrefix(strings.TrimSpace(a.Body), "{") || a.BodyBytes > 0 || a.Slow
	if jsonBody && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	e.count(status)
	switch {
	case a.Slow:
		w.WriteHeader(status)
		flusher, _ := w.(http.Flusher)
		_, _ = io.WriteString(w, `{"value":[`)
		for {
			if flusher != nil {
				flusher.Flush()
			}
			if !e.pause(r.Context(), 20*time.Millisecond) {
				// Cut the connection rather than end the answer cleanly.
				panic(http.ErrAbortHandler)
			}
			if _, err := io.WriteString(w, " "); err != nil {
				panic(http.ErrAbortHandler)
			}
		}
	case a.BodyBytes > 0:
		const head, tail = `{"value":[{"host":"`, `"}]}`
		n := max(a.BodyBytes-int64(len(head)+len(tail)), 1)
		if !a.NoLength {
			w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head))+n+int64(len(tail)), 10))
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, head)
		chunk := []byte(strings.Repeat("a", 32<<10))
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
		_, _ = io.WriteString(w, tail)
	default:
		w.Header().Set("Content-Length", strconv.Itoa(len(a.Body)))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, a.Body)
	}
}
