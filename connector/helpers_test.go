package connector_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// apis are the APIs every shared behaviour is proven on.
var apis = []connector.API{connector.Graph, connector.MDE}

// forEachAPI runs f as a subtest per API, named after it.
func forEachAPI(t *testing.T, f func(t *testing.T, api connector.API)) {
	t.Helper()
	for _, api := range apis {
		t.Run(string(api), func(t *testing.T) { f(t, api) })
	}
}

// newServer starts an emulator that is closed when the test ends.
func newServer(t testing.TB, cfg emulator.Config) *emulator.Server {
	t.Helper()
	srv := emulator.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

// newClient is a client of api at srv signed in with its client secret,
// with short backoff intervals; opts come last and win.
func newClient(t testing.TB, srv *emulator.Server, api connector.API, opts ...connector.Option) *connector.Client {
	t.Helper()
	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		t.Fatal(err)
	}
	return newClientWith(t, srv, api, cred, emulator.ScopeOf(api), opts...)
}

func newClientWith(t testing.TB, srv *emulator.Server, api connector.API, cred azcore.TokenCredential, scope string, opts ...connector.Option) *connector.Client {
	t.Helper()
	base := []connector.Option{
		connector.WithHTTPClient(srv.Client()),
		connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, time.Second),
		connector.WithTimeout(5 * time.Second),
	}
	c, err := connector.New(api, srv.URL, cred, scope, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// staticCredential hands out one fixed token.
type staticCredential struct{ token string }

func (c staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	status []int
	waits  []time.Duration
	calls  chan int // every DefenderCall status, when not nil
}

func (r *recorder) DefenderCall(status int, d time.Duration) {
	r.mu.Lock()
	r.status = append(r.status, status)
	r.mu.Unlock()
	if r.calls != nil {
		r.calls <- status
	}
}

func (r *recorder) QuotaWait(d time.Duration) {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
}

func (r *recorder) statuses() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.status...)
}

func (r *recorder) quotaWaits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

// Tracking IDs in the scripted error bodies.
const (
	scriptedTarget    = "3f2b8a4c-0000-4000-8000-000000000001"
	scriptedRequestID = "b7c9a0d2-0000-4000-8000-000000000002"
	scriptedClientID  = "c0ffee00-0000-4000-8000-000000000003"
)

// errorBody is api's error body with code, as Microsoft documents it: the
// endpoint API's {"error":{"code","message","target"}}, Graph's
// {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}.
func errorBody(api connector.API, code string) string {
	if api == connector.MDE {
		return `{"error":{"code":"` + code + `","message":"scripted free text","target":"` + scriptedTarget + `"}}`
	}
	return `{"error":{"code":"` + code + `","message":"scripted free text","innerError":{"date":"2026-11-27T09:14:03","request-id":"` +
		scriptedRequestID + `","client-request-id":"` + scriptedClientID + `"}}}`
}

// successBody is api's 200 answer for alert id with hosts: the endpoint
// API's list of domains, or Graph's alert object with one urlEvidence per
// host (as the docs' alert and urlEvidence resource show them).
func successBody(api connector.API, id string, hosts ...string) string {
	if api == connector.MDE {
		type entry struct {
			Host string `json:"host"`
		}
		page := struct {
			Context string  `json:"@odata.context"`
			Value   []entry `json:"value"`
		}{Context: "https://api.securitycenter.microsoft.com/api/$metadata#Domains", Value: []entry{}}
		for _, h := range hosts {
			page.Value = append(page.Value, entry{h})
		}
		b, _ := json.Marshal(page)
		return string(b)
	}
	evidence := []any{}
	for _, h := range hosts {
		evidence = append(evidence, urlEvidence("https://"+h+"/"))
	}
	b, _ := json.Marshal(graphAlert(id, evidence...))
	return string(b)
}

// graphAlert is a Graph alert object with the members of the docs'
// example and evidence.
func graphAlert(id string, evidence ...any) map[string]any {
	return map[string]any{
		"@odata.type":           "#microsoft.graph.security.alert",
		"id":                    id,
		"providerAlertId":       id,
		"incidentId":            "28282",
		"status":                "new",
		"severity":              "low",
		"classification":        "unknown",
		"determination":         "unknown",
		"serviceSource":         "microsoftDefenderForEndpoint",
		"detectionSource":       "antivirus",
		"detectorId":            "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
		"tenantId":              "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
		"title":                 "Suspicious connection",
		"category":              "CommandAndControl",
		"assignedTo":            nil,
		"mitreTechniques":       []string{"T1071.001"},
		"createdDateTime":       "2021-04-27T12:19:27.7211305Z",
		"lastUpdateDateTime":    "2021-05-02T14:19:01.3266667Z",
		"resolvedDateTime":      nil,
		"firstActivityDateTime": "2021-04-26T07:45:50.116Z",
		"lastActivityDateTime":  "2021-05-02T07:56:58.222Z",
		"comments":              []any{},
		"evidence":              evidence,
		"systemTags":            []string{},
	}
}

// evidence is an alertEvidence of the derived type typ with members.
func evidence(typ string, members map[string]any) map[string]any {
	e := map[string]any{
		"@odata.type":              "#microsoft.graph.security." + typ,
		"createdDateTime":          "2021-04-27T12:19:27.7211305Z",
		"verdict":                  "suspicious",
		"remediationStatus":        "none",
		"remediationStatusDetails": nil,
		"roles":                    []string{},
		"detailedRoles":            []string{},
		"tags":                     []string{},
	}
	for k, v := range members {
		e[k] = v
	}
	return e
}

func urlEvidence(u any) map[string]any { return evidence("urlEvidence", map[string]any{"url": u}) }

// wantCode is the error.code the emulator sends for status on api.
func wantCode(api connector.API, status int) string {
	codes := map[connector.API]map[int]string{
		connector.MDE:   {401: "Unauthorized", 403: "Forbidden", 404: "ResourceNotFound", 429: "TooManyRequests", 500: "InternalServerError", 503: "InternalServerError"},
		connector.Graph: {401: "InvalidAuthenticationToken", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"},
	}
	return codes[api][status]
}

// callPath is the path of api's call for id.
func callPath(api connector.API, id string) string {
	if api == connector.MDE {
		return "/api/alerts/" + id + "/domains"
	}
	return "/v1.0/security/alerts_v2/" + id
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// asError returns err as an *connector.Error or fails the test.
func asError(t *testing.T, err error) *connector.Error {
	t.Helper()
	var e *connector.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want *connector.Error", err, err)
	}
	return e
}

// scripted is one answer of a pathServer.
type scripted struct {
	status int
	header http.Header
	body   string
}

// pathServer is an HTTPS server that answers each request with the next
// of its answers (the last one again once they are used up) and records
// the escaped path of every request.
type pathServer struct {
	*httptest.Server
	mu      sync.Mutex
	answers []scripted
	paths   []string
}

func newPathServer(t *testing.T, answers ...scripted) *pathServer {
	t.Helper()
	s := &pathServer{answers: answers}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.EscapedPath())
		a := s.answers[0]
		if len(s.answers) > 1 {
			s.answers = s.answers[1:]
		}
		s.mu.Unlock()
		for k, v := range a.header {
			w.Header()[k] = v
		}
		if a.status == 0 {
			a.status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(s.Close)
	return s
}

// script replaces the server's answers and forgets the paths seen.
func (s *pathServer) script(answers ...scripted) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers, s.paths = answers, nil
}

func (s *pathServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

// client is a client of api at the server with a static token.
func (s *pathServer) client(t *testing.T, api connector.API, opts ...connector.Option) *connector.Client {
	t.Helper()
	base := []connector.Option{
		connector.WithHTTPClient(s.Client()),
		connector.WithBackoff(5*time.Millisecond, 10*time.Millisecond, time.Second),
	}
	c, err := connector.New(api, s.URL, staticCredential{"static-token"}, emulator.ScopeOf(api), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// contains reports whether any of texts holds s.
func contains(texts []string, s string) bool {
	for _, text := range texts {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}
