package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newServer(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	srv := emulator.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv *emulator.Server, req *http.Request) answer {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func get(t *testing.T, srv *emulator.Server, path, token string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, srv, req)
}

func postToken(t *testing.T, srv *emulator.Server, tenant string, form url.Values) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, srv, req)
}

func tokenForm(mod func(url.Values)) url.Values {
	f := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {emulator.DefaultClientID},
		"client_secret": {emulator.DefaultClientSecret},
		"scope":         {emulator.Scope},
	}
	if mod != nil {
		mod(f)
	}
	return f
}

func token(t *testing.T, srv *emulator.Server) string {
	t.Helper()
	a := postToken(t, srv, emulator.DefaultTenantID, tokenForm(nil))
	var tok struct {
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		AccessToken string `json:"access_token"`
	}
	if a.status != 200 || json.Unmarshal([]byte(a.body), &tok) != nil || tok.TokenType != "Bearer" || tok.ExpiresIn != 3599 || tok.AccessToken == "" {
		t.Fatalf("token answer %d %s", a.status, a.body)
	}
	return tok.AccessToken
}

func TestOpenIDConfiguration(t *testing.T) {
	srv := newServer(t, emulator.Config{})
	a := get(t, srv, "/"+emulator.DefaultTenantID+"/v2.0/.well-known/openid-configuration", "")
	var cfg map[string]any
	if a.status != 200 || json.Unmarshal([]byte(a.body), &cfg) != nil {
		t.Fatalf("answer %d %s", a.status, a.body)
	}
	prefix := srv.URL + "/" + emulator.DefaultTenantID
	for key, want := range map[string]string{
		"issuer":                 prefix + "/v2.0",
		"token_endpoint":         prefix + "/oauth2/v2.0/token",
		"authorization_endpoint": prefix + "/oauth2/v2.0/authorize",
		"jwks_uri":               prefix + "/discovery/v2.0/keys",
	} {
		if cfg[key] != want {
			t.Errorf("%s = %v, want %s", key, cfg[key], want)
		}
	}
	if a := get(t, srv, "/someone-else/v2.0/.well-known/openid-configuration", ""); a.status != 400 || !strings.Contains(a.body, "AADSTS90002") {
		t.Errorf("unknown tenant: %d %s", a.status, a.body)
	}
}

func TestTokenEndpoint(t *testing.T) {
	srv := newServer(t, emulator.Config{})
	tests := []struct {
		name   string
		tenant string
		mod    func(url.Values)
		status int
		want   string
	}{
		{"wrong secret", "", func(f url.Values) { f.Set("client_secret", "nope") }, 401, "AADSTS7000215"},
		{"no secret", "", func(f url.Values) { f.Del("client_secret") }, 401, "AADSTS7000216"},
		{"unknown client", "", func(f url.Values) { f.Set("client_id", "x") }, 400, "AADSTS700016"},
		{"wrong grant", "", func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"scope without .default", "", func(f url.Values) { f.Set("scope", "https://api.securitycenter.microsoft.com/Alert.Read") }, 400, "invalid_scope"},
		{"regional scope", "", func(f url.Values) { f.Set("scope", "https://eu.api.security.microsoft.com/.default") }, 400, "AADSTS500011"},
		{"unknown tenant", "other", nil, 400, "AADSTS90002"},
		{"bad assertion", "", func(f url.Values) {
			f.Del("client_secret")
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", "not-a-jwt")
		}, 401, "AADSTS50027"},
		{"assertion", "", func(f url.Values) {
			f.Del("client_secret")
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			f.Set("client_assertion", "a.b.c")
		}, 200, "access_token"},
		{"gcc scope", "", func(f url.Values) { f.Set("scope", "https://api-gcc.securitycenter.microsoft.us/.default") }, 200, "access_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := tt.tenant
			if tenant == "" {
				tenant = emulator.DefaultTenantID
			}
			a := postToken(t, srv, tenant, tokenForm(tt.mod))
			if a.status != tt.status || !strings.Contains(a.body, tt.want) {
				t.Errorf("answer %d %s, want %d with %s", a.status, a.body, tt.status, tt.want)
			}
		})
	}
	if n := srv.TokensIssued(); n != 2 {
		t.Errorf("TokensIssued = %d, want 2", n)
	}
}

func TestDomainsCall(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true})
	tok := token(t, srv)
	tests := []struct {
		name, path, token string
		status            int
		want              string
	}{
		{"known", "/api/alerts/da637472900382838869_1364969609/domains", tok, 200,
			`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"cdn.example.net"}]}`},
		{"v1.0", "/api/v1.0/alerts/da637472900382838869_1364969609/domains", tok, 200,
			`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"cdn.example.net"}]}`},
		{"none", "/api/alerts/636688558380765161_2136280442/domains", tok, 200,
			`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[]}`},
		{"unknown alert", "/api/alerts/da1_2/domains", tok, 404, `"code":"ResourceNotFound"`},
		{"invalid id", "/api/alerts/a.b/domains", tok, 400, `"target":"`},
		{"no token", "/api/alerts/da1_2/domains", "", 401, `"code":"Unauthorized"`},
		{"unknown token", "/api/alerts/da1_2/domains", "forged", 401, `"code":"Unauthorized"`},
		{"unknown route", "/api/alerts/da1_2/ips", tok, 404, ""},
		{"docs' route without /api", "/alerts/da1_2/domains", tok, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, srv, tt.path, tt.token)
			if a.status != tt.status {
				t.Errorf("status %d, want %d", a.status, tt.status)
			}
			if tt.want == "" && a.body != "" || !strings.Contains(a.body, tt.want) {
				t.Errorf("body %q, want %q", a.body, tt.want)
			}
		})
	}
	// The endpoint API documents these codes for a 400.
	a := get(t, srv, "/api/alerts/a.b/domains", tok)
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &body); err != nil || !slices.Contains([]string{"BadRequest", "InvalidInput", "ODataError", "MissingRequiredParameter"}, body.Error.Code) {
		t.Errorf("invalid id: code %q, %v", body.Error.Code, err)
	}
	if n := srv.Calls(); n != 8 {
		t.Errorf("Calls = %d, want 8 domains calls", n)
	}
	if n := srv.Answered(200); n != 3 {
		t.Errorf("Answered(200) = %d, want 3", n)
	}
}

func TestQuotaRetryAfter(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true, Quota: []connector.Limit{{Count: 2, Window: 90 * time.Second}}})
	tok := token(t, srv)
	const path = "/api/alerts/da637472900382838869_1364969609/domains"
	for range 2 {
		if a := get(t, srv, path, tok); a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
	}
	a := get(t, srv, path, tok)
	secs, err := strconv.Atoi(a.header.Get("Retry-After"))
	if a.status != 429 || !strings.Contains(a.body, "TooManyRequests") || err != nil || secs < 89 || secs > 90 {
		t.Fatalf("answer %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
}

func TestPagesAndSyntheticAlerts(t *testing.T) {
	srv := newServer(t, emulator.Config{Alerts: map[string][]string{"five": {"a", "b", "c", "d", "e"}}, AnyAlert: true, PageSize: 2})
	tok := token(t, srv)
	var hosts []string
	next := srv.URL + "/api/alerts/five/domains"
	for next != "" {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, next, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		a := do(t, srv, req)
		var page struct {
			Value []struct {
				Host string `json:"host"`
			} `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal([]byte(a.body), &page); err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Value {
			hosts = append(hosts, v.Host)
		}
		next = page.NextLink
	}
	if !reflect.DeepEqual(hosts, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("hosts = %v", hosts)
	}
	first := get(t, srv, "/api/alerts/any_thing-1/domains", tok)
	again := get(t, srv, "/api/alerts/any_thing-1/domains", tok)
	if first.status != 200 || first.body != again.body || !strings.Contains(first.body, `"host":"h`) {
		t.Errorf("synthetic answers %d %s / %s", first.status, first.body, again.body)
	}
}

func TestFaultsOutageAndScripts(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true, FaultRate: 1, FaultSeed: 7})
	tok := token(t, srv)
	const id = "da637472900382838869_1364969609"
	const path = "/api/alerts/" + id + "/domains"
	if a := get(t, srv, path, tok); a.status != 503 || !strings.Contains(a.body, "InternalServerError") {
		t.Errorf("fault: %d %s", a.status, a.body)
	}
	srv = newServer(t, emulator.Config{SeedData: true})
	tok = token(t, srv)
	srv.SetOutage(502)
	if a := get(t, srv, path, tok); a.status != 502 {
		t.Errorf("outage: %d", a.status)
	}
	srv.SetOutage(0)
	srv.Script(id, emulator.Answer{Status: 418, Body: "teapot", Header: http.Header{"X-Test": {"1"}}})
	if a := get(t, srv, path, tok); a.status != 418 || a.body != "teapot" || a.header.Get("X-Test") != "1" {
		t.Errorf("script: %d %q %v", a.status, a.body, a.header)
	}
	if a := get(t, srv, path, tok); a.status != 200 {
		t.Errorf("after the script: %d", a.status)
	}
	srv.Script(id, emulator.Answer{BodyBytes: 100_000})
	if a := get(t, srv, path, tok); a.status != 200 || len(a.body) != 100_000 || !json.Valid([]byte(a.body)) {
		t.Errorf("large body: %d, %d bytes", a.status, len(a.body))
	}
	if n := srv.CallsFor(id); n != 4 {
		t.Errorf("CallsFor = %d, want 4 on the second server", n)
	}
	if n := len(srv.CallTimes()); n != 4 {
		t.Errorf("%d call times, want 4", n)
	}
	srv.ExpireTokens()
	if a := get(t, srv, path, tok); a.status != 401 {
		t.Errorf("expired token: %d", a.status)
	}
}

func TestTokenLifetime(t *testing.T) {
	srv := newServer(t, emulator.Config{TenantID: "t1", ClientID: "c1", ClientSecret: "s1", TokenLifetime: -time.Second})
	a := postToken(t, srv, "t1", url.Values{"grant_type": {"client_credentials"}, "client_id": {"c1"}, "client_secret": {"s1"}, "scope": {emulator.Scope}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if a.status != 200 || json.Unmarshal([]byte(a.body), &tok) != nil {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	if a := get(t, srv, "/api/alerts/x/domains", tok.AccessToken); a.status != 401 {
		t.Errorf("an expired token got %d", a.status)
	}
}

func TestLoadData(t *testing.T) {
	e := emulator.NewHandler(emulator.Config{})
	if err := e.LoadData(strings.NewReader(`{"alerts":{"a_1":["x.example"],"b_2":[]}}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"alerts":{"a/1":["x"]}}`,
		`{"alerts":{"a":[""]}}`,
		`{"alerts":{"a":[1]}}`,
		`{"other":{}}`,
		`{}`,
		`[]`,
		``,
	} {
		if err := e.LoadData(strings.NewReader(bad)); err == nil {
			t.Errorf("LoadData(%s) = nil, want an error", bad)
		}
	}
}

func TestScriptedTokenAnswersAndClaims(t *testing.T) {
	srv := newServer(t, emulator.Config{})
	srv.ScriptToken(emulator.Answer{Status: 401, Body: "echo: ", EchoForm: true}, emulator.Answer{Body: `{"access_token":"x"`})
	if a := postToken(t, srv, emulator.DefaultTenantID, tokenForm(nil)); a.status != 401 || !strings.Contains(a.body, "echo: ") || !strings.Contains(a.body, "client_secret="+emulator.DefaultClientSecret) {
		t.Errorf("echo answer %d %s", a.status, a.body)
	}
	if a := postToken(t, srv, emulator.DefaultTenantID, tokenForm(nil)); a.status != 200 || a.body != `{"access_token":"x"` {
		t.Errorf("malformed answer %d %s", a.status, a.body)
	}
	token(t, srv) // the script is used up
	if n, m := srv.TokensIssued(), srv.TokensForClaims(); n != 1 || m != 0 {
		t.Errorf("%d tokens, %d for claims; want 1 and 0", n, m)
	}
	claims := func(v string) func(url.Values) { return func(f url.Values) { f.Set("claims", v) } }
	if a := postToken(t, srv, emulator.DefaultTenantID, tokenForm(claims(`{"access_token":{"nbf":{"essential":true,"value":"1"}}}`))); a.status != 200 {
		t.Errorf("claims answer %d %s", a.status, a.body)
	}
	if a := postToken(t, srv, emulator.DefaultTenantID, tokenForm(claims(`{not json`))); a.status != 400 {
		t.Errorf("invalid claims answer %d %s", a.status, a.body)
	}
	if n, m := srv.TokensIssued(), srv.TokensForClaims(); n != 2 || m != 1 {
		t.Errorf("%d tokens, %d for claims; want 2 and 1", n, m)
	}
}

func TestBodyWithoutLength(t *testing.T) {
	srv := newServer(t, emulator.Config{})
	srv.Script("big", emulator.Answer{BodyBytes: 1 << 20, NoLength: true})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/alerts/big/domains", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(t, srv))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.ContentLength != -1 || n != 1<<20 {
		t.Errorf("answer of %d bytes (Content-Length %d), %v; want 1 MiB without a length", n, resp.ContentLength, err)
	}
}

// tokenFor is a token for scope from the emulator's token endpoint.
func tokenFor(t *testing.T, srv *emulator.Server, scope string) string {
	t.Helper()
	a := postToken(t, srv, emulator.DefaultTenantID, tokenForm(func(f url.Values) { f.Set("scope", scope) }))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if a.status != 200 || json.Unmarshal([]byte(a.body), &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token answer %d %s", a.status, a.body)
	}
	return tok.AccessToken
}

// claimsOf decodes the claims of a JWT, or fails the test.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// newClient is a connector client of api at srv.
func newClient(t *testing.T, srv *emulator.Server, api connector.API) *connector.Client {
	t.Helper()
	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		t.Fatal(err)
	}
	c, err := connector.New(api, srv.URL, cred, emulator.ScopeOf(api),
		connector.WithHTTPClient(srv.Client()), connector.WithBackoff(5*time.Millisecond, 10*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBothAPIsAnswerFromOneSetOfAlerts: for every alert, the domains Graph's
// alert object gives are the endpoint API's hosts (without duplicates),
// and Graph knows an endpoint ID without a product prefix as "da" + ID.
func TestBothAPIsAnswerFromOneSetOfAlerts(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true, AnyAlert: true})
	graph, mde := newClient(t, srv, connector.Graph), newClient(t, srv, connector.MDE)
	ids := []string{"any_thing-1", "123_456", "synthetic"}
	for id := range emulator.SeedData() {
		ids = append(ids, id)
	}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			m, err := mde.Domains(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			g, err := graph.Domains(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g.Domains, m.Domains) {
				t.Errorf("graph %q, mde %q", g.Domains, m.Domains)
			}
			if hosts, seeded := emulator.SeedData()[id]; seeded {
				want := []string{}
				for _, h := range hosts {
					if !slices.Contains(want, h) {
						want = append(want, h)
					}
				}
				if !reflect.DeepEqual(m.Domains, want) {
					t.Errorf("mde %q, want the seed's hosts %q", m.Domains, want)
				}
			}
			wantGraphID, wantAttempts := "", 1
			if connector.LegacyAlertID(id) {
				wantGraphID, wantAttempts = "da"+id, 2
			}
			if g.GraphAlertID != wantGraphID || g.Attempts != wantAttempts || m.Attempts != 1 {
				t.Errorf("graph: id %q after %d attempts, mde %d attempts; want %q after %d, and 1",
					g.GraphAlertID, g.Attempts, m.Attempts, wantGraphID, wantAttempts)
			}
		})
	}
	if srv.CallsOf(connector.Graph)+srv.CallsOf(connector.MDE) != srv.Calls() {
		t.Errorf("calls of graph %d + mde %d != %d", srv.CallsOf(connector.Graph), srv.CallsOf(connector.MDE), srv.Calls())
	}
}

// graphAlert is what the tests read of Graph's alert object.
type graphAlert struct {
	Type            string `json:"@odata.type"`
	ID              string `json:"id"`
	ProviderAlertID string `json:"providerAlertId"`
	ServiceSource   string `json:"serviceSource"`
	Evidence        []struct {
		Type       string   `json:"@odata.type"`
		URL        string   `json:"url"`
		URLs       []string `json:"urls"`
		Verdict    string   `json:"verdict"`
		Created    string   `json:"createdDateTime"`
		Roles      []string `json:"roles"`
		DeviceName string   `json:"deviceDnsName"`
	} `json:"evidence"`
}

// graphError is Graph's error body.
type graphError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

func TestGraphAlertCall(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true})
	tok := tokenFor(t, srv, emulator.GraphScope)
	tests := []struct {
		name, path, token string
		status            int
		id                string // of the alert answered
		code              string // of the error answered
	}{
		{"known", "/v1.0/security/alerts_v2/da637472900382838869_1364969609", tok, 200, "da637472900382838869_1364969609", ""},
		{"beta", "/beta/security/alerts_v2/da637472900382838869_1364969609", tok, 200, "da637472900382838869_1364969609", ""},
		{"no domains", "/v1.0/security/alerts_v2/da636688558380765161_2136280442", tok, 200, "da636688558380765161_2136280442", ""},
		{"endpoint id with graph's prefix", "/v1.0/security/alerts_v2/da637612345678901234_1122334455", tok, 200, "da637612345678901234_1122334455", ""},
		{"endpoint id as is", "/v1.0/security/alerts_v2/637612345678901234_1122334455", tok, 404, "", "NotFound"},
		{"unknown alert", "/v1.0/security/alerts_v2/da1_2", tok, 404, "", "NotFound"},
		{"invalid id", "/v1.0/security/alerts_v2/a.b", tok, 400, "", "BadRequest"},
		{"no token", "/v1.0/security/alerts_v2/da1_2", "", 401, "", "InvalidAuthenticationToken"},
		{"unknown token", "/v1.0/security/alerts_v2/da1_2", "forged", 401, "", "InvalidAuthenticationToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, srv, tt.path, tt.token)
			if a.status != tt.status || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Fatalf("answer %d %s %s", a.status, a.header.Get("Content-Type"), a.body)
			}
			if tt.code != "" {
				var e graphError
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Code != tt.code || e.Error.InnerError.RequestID == "" {
					t.Errorf("error body %s, want Graph's with code %s: %v", a.body, tt.code, err)
				}
				return
			}
			var alert graphAlert
			if err := json.Unmarshal([]byte(a.body), &alert); err != nil {
				t.Fatal(err)
			}
			if alert.Type != "#microsoft.graph.security.alert" || alert.ID != tt.id || alert.ServiceSource != "microsoftDefenderForEndpoint" || len(alert.Evidence) == 0 {
				t.Errorf("alert %+v", alert)
			}
			for _, e := range alert.Evidence {
				if !strings.HasPrefix(e.Type, "#microsoft.graph.security.") || !strings.HasSuffix(e.Type, "Evidence") || e.Verdict == "" || e.Created == "" || e.Roles == nil {
					t.Errorf("evidence %+v is not a typed alertEvidence", e)
				}
			}
		})
	}
	if a := get(t, srv, "/v1.0/security/alerts_v2/da1_2/evidence", tok); a.status != 404 || a.body != "" {
		t.Errorf("unknown route: %d %q", a.status, a.body)
	}
	if n := srv.CallsOf(connector.Graph); n != len(tests) {
		t.Errorf("CallsOf(graph) = %d, want %d", n, len(tests))
	}
	if n := srv.CallsOf(connector.MDE); n != 0 {
		t.Errorf("CallsOf(mde) = %d, want 0", n)
	}
}

// TestTokensAreJWTsWithRoles: a token names its audience, the tenant and
// the app, and its roles claim lists the permissions granted on its API;
// none when there are none.
func TestTokensAreJWTsWithRoles(t *testing.T) {
	tests := []struct {
		name  string
		perms []string // nil: the default
		scope string
		aud   string
		roles []any // nil: no roles claim
	}{
		{"graph", nil, emulator.GraphScope, "https://graph.microsoft.com", []any{emulator.GraphPermission}},
		{"graph, us government", nil, "https://graph.microsoft.us/.default", "https://graph.microsoft.us", []any{emulator.GraphPermission}},
		{"graph, dod", nil, "https://dod-graph.microsoft.us/.default", "https://dod-graph.microsoft.us", []any{emulator.GraphPermission}},
		{"mde", nil, emulator.Scope, "https://api.securitycenter.microsoft.com", []any{emulator.MDEPermission}},
		{"mde, gcc", nil, "https://api-gcc.securitycenter.microsoft.us/.default", "https://api-gcc.securitycenter.microsoft.us", []any{emulator.MDEPermission}},
		{"graph without its permission", []string{emulator.MDEPermission}, emulator.GraphScope, "https://graph.microsoft.com", nil},
		{"mde without its permission", []string{emulator.GraphPermission}, emulator.Scope, "https://api.securitycenter.microsoft.com", nil},
		{"graph read-write", []string{"SecurityAlert.ReadWrite.All"}, emulator.GraphScope, "https://graph.microsoft.com", []any{"SecurityAlert.ReadWrite.All"}},
		{"nothing granted", []string{}, emulator.GraphScope, "https://graph.microsoft.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, emulator.Config{Permissions: tt.perms})
			claims := claimsOf(t, tokenFor(t, srv, tt.scope))
			if claims["aud"] != tt.aud || claims["tid"] != emulator.DefaultTenantID || claims["appid"] != emulator.DefaultClientID {
				t.Errorf("claims %v", claims)
			}
			exp, iat := claims["exp"].(float64), claims["iat"].(float64)
			if exp-iat != emulator.DefaultTokenLifetime.Seconds() {
				t.Errorf("lifetime %vs", exp-iat)
			}
			roles, has := claims["roles"]
			if tt.roles == nil {
				if has {
					t.Errorf("roles claim %v, want none", roles)
				}
			} else if !reflect.DeepEqual(roles, tt.roles) {
				t.Errorf("roles %v, want %v", roles, tt.roles)
			}
		})
	}
}

// TestEachAPIRefusesOtherTokens: a token for the other API, for another
// resource, or without the API's permission is answered 403 in the API's
// own error body; the missing permission is named.
func TestEachAPIRefusesOtherTokens(t *testing.T) {
	const id = "da637472900382838869_1364969609"
	paths := map[connector.API]string{
		connector.Graph: "/v1.0/security/alerts_v2/" + id,
		connector.MDE:   "/api/alerts/" + id + "/domains",
	}
	tests := []struct {
		name  string
		perms []string
		scope string
		api   connector.API
		names string // in the message
	}{
		{"graph token on mde", nil, emulator.GraphScope, connector.MDE, ""},
		{"mde token on graph", nil, emulator.Scope, connector.Graph, ""},
		{"management token on graph", nil, "https://management.azure.com/.default", connector.Graph, ""},
		{"management token on mde", nil, "https://management.azure.com/.default", connector.MDE, ""},
		{"graph without SecurityAlert.Read.All", []string{emulator.MDEPermission}, emulator.GraphScope, connector.Graph, emulator.GraphPermission},
		{"mde without URL.Read.All", []string{emulator.GraphPermission}, emulator.Scope, connector.MDE, emulator.MDEPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, emulator.Config{SeedData: true, Permissions: tt.perms})
			a := get(t, srv, paths[tt.api], tokenFor(t, srv, tt.scope))
			if a.status != 403 {
				t.Fatalf("answer %d %s, want 403", a.status, a.body)
			}
			var msg string
			if tt.api == connector.Graph {
				var e graphError
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Code != "Forbidden" || e.Error.InnerError.RequestID == "" {
					t.Errorf("body %s, want Graph's Forbidden: %v", a.body, err)
				}
				msg = e.Error.Message
			} else {
				var e struct {
					Error struct{ Code, Message, Target string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Code != "Forbidden" || e.Error.Target == "" {
					t.Errorf("body %s, want the endpoint API's Forbidden: %v", a.body, err)
				}
				msg = e.Error.Message
			}
			if tt.names != "" && !strings.Contains(msg, tt.names) {
				t.Errorf("message %q does not name %s", msg, tt.names)
			}
			if n := srv.Answered(403); n != 1 {
				t.Errorf("Answered(403) = %d", n)
			}
		})
	}
}

// TestGraphErrorBody: Graph's errors carry error.code, a message and
// innerError with the date, the request-id (also in the request-id
// header, new for every answer) and the client-request-id the client sent.
func TestGraphErrorBody(t *testing.T) {
	srv := newServer(t, emulator.Config{})
	tok := tokenFor(t, srv, emulator.GraphScope)
	var ids []string
	for _, clientID := range []string{"", "9a8b7c6d-0000-4000-8000-0000000000ff"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1.0/security/alerts_v2/da1_2", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if clientID != "" {
			req.Header.Set("client-request-id", clientID)
		}
		a := do(t, srv, req)
		var e graphError
		if err := json.Unmarshal([]byte(a.body), &e); err != nil {
			t.Fatal(err)
		}
		inner := e.Error.InnerError
		if a.status != 404 || e.Error.Code != "NotFound" || e.Error.Message == "" {
			t.Errorf("answer %d %s", a.status, a.body)
		}
		if _, err := time.Parse("2006-01-02T15:04:05", inner.Date); err != nil {
			t.Errorf("innerError.date %q: %v", inner.Date, err)
		}
		if inner.RequestID == "" || a.header.Get("request-id") != inner.RequestID {
			t.Errorf("request-id header %q, innerError %q", a.header.Get("request-id"), inner.RequestID)
		}
		wantClient := clientID
		if wantClient == "" {
			wantClient = inner.RequestID
		}
		if inner.ClientRequestID != wantClient || a.header.Get("client-request-id") != wantClient {
			t.Errorf("client-request-id %q (header %q), want %q", inner.ClientRequestID, a.header.Get("client-request-id"), wantClient)
		}
		ids = append(ids, inner.RequestID)
	}
	if ids[0] == ids[1] {
		t.Errorf("two answers with the request-id %s", ids[0])
	}
	// The endpoint API's errors keep their own shape.
	a := get(t, srv, "/api/alerts/da1_2/domains", tokenFor(t, srv, emulator.Scope))
	if a.status != 404 || a.header.Get("request-id") != "" || !strings.Contains(a.body, `"target":`) || strings.Contains(a.body, "innerError") {
		t.Errorf("endpoint API error %d %v %s", a.status, a.header, a.body)
	}
	srv.SetOutage(503)
	if a := get(t, srv, "/v1.0/security/alerts_v2/da1_2", tok); a.status != 503 || !strings.Contains(a.body, `"code":"ServiceUnavailable"`) || a.header.Get("request-id") == "" {
		t.Errorf("outage on graph: %d %s", a.status, a.body)
	}
}

// TestQuotaPerAPI: each API keeps its own quota.
func TestQuotaPerAPI(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true, Quota: []connector.Limit{{Count: 1, Window: time.Hour}}})
	const id = "da637472900382838869_1364969609"
	calls := []struct {
		path, scope string
		status      int
		shape       string
	}{
		{"/v1.0/security/alerts_v2/" + id, emulator.GraphScope, 200, `"evidence"`},
		{"/v1.0/security/alerts_v2/" + id, emulator.GraphScope, 429, `"innerError"`},
		{"/api/alerts/" + id + "/domains", emulator.Scope, 200, `"value"`},
		{"/api/alerts/" + id + "/domains", emulator.Scope, 429, `"target"`},
	}
	for _, c := range calls {
		a := get(t, srv, c.path, tokenFor(t, srv, c.scope))
		if a.status != c.status || !strings.Contains(a.body, c.shape) {
			t.Errorf("%s: %d %s, want %d with %s", c.path, a.status, a.body, c.status, c.shape)
		}
		if c.status == 429 {
			if secs, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || secs < 3590 || secs > 3600 || !strings.Contains(a.body, `"code":"TooManyRequests"`) {
				t.Errorf("%s: Retry-After %q, body %s", c.path, a.header.Get("Retry-After"), a.body)
			}
		}
	}
	if g, m := srv.CallsOf(connector.Graph), srv.CallsOf(connector.MDE); g != 2 || m != 2 {
		t.Errorf("CallsOf graph %d, mde %d; want 2 and 2", g, m)
	}
}

// TestScriptsApplyToTheIDAsAsked: a script answers the next call for the
// ID as it is asked, on either API: Graph's second form of an endpoint ID
// is another ID.
func TestScriptsApplyToTheIDAsAsked(t *testing.T) {
	const bare = "637612345678901234_1122334455"
	t.Run("bare id", func(t *testing.T) {
		srv := newServer(t, emulator.Config{SeedData: true})
		srv.Script(bare, emulator.Answer{Status: 418, Body: "teapot"})
		if a := get(t, srv, "/v1.0/security/alerts_v2/da"+bare, tokenFor(t, srv, emulator.GraphScope)); a.status != 200 {
			t.Errorf("graph's form: %d, want 200 (not scripted)", a.status)
		}
		if a := get(t, srv, "/api/alerts/"+bare+"/domains", tokenFor(t, srv, emulator.Scope)); a.status != 418 || a.body != "teapot" {
			t.Errorf("the endpoint API: %d %q, want the script", a.status, a.body)
		}
	})
	t.Run("graph's form", func(t *testing.T) {
		srv := newServer(t, emulator.Config{SeedData: true})
		srv.Script("da"+bare, emulator.Answer{Status: 503})
		res, err := newClient(t, srv, connector.Graph).Domains(t.Context(), bare)
		// 404 for the bare ID, 503 for the second form, then its answer.
		if err != nil || res.Attempts != 3 || res.GraphAlertID != "da"+bare || len(res.Domains) != 2 {
			t.Fatalf("Domains = %+v, %v; want success after 3 attempts", res, err)
		}
		if srv.CallsFor(bare) != 1 || srv.CallsFor("da"+bare) != 2 || srv.Answered(503) != 1 || srv.Answered(404) != 1 {
			t.Errorf("calls %d for %s, %d for da%s; %d answers 503, %d 404",
				srv.CallsFor(bare), bare, srv.CallsFor("da"+bare), bare, srv.Answered(503), srv.Answered(404))
		}
	})
	t.Run("either api", func(t *testing.T) {
		const id = "da637472900382838869_1364969609"
		srv := newServer(t, emulator.Config{SeedData: true})
		srv.Script(id, emulator.Answer{Status: 502}, emulator.Answer{Status: 504})
		graphTok, mdeTok := tokenFor(t, srv, emulator.GraphScope), tokenFor(t, srv, emulator.Scope)
		for _, c := range []struct {
			path, tok string
			status    int
		}{
			{"/v1.0/security/alerts_v2/" + id, graphTok, 502},
			{"/api/alerts/" + id + "/domains", mdeTok, 504},
			{"/v1.0/security/alerts_v2/" + id, graphTok, 200},
			{"/api/alerts/" + id + "/domains", mdeTok, 200},
		} {
			if a := get(t, srv, c.path, c.tok); a.status != c.status {
				t.Errorf("%s: %d, want %d", c.path, a.status, c.status)
			}
		}
	})
	t.Run("large answers in each api's shape", func(t *testing.T) {
		const id = "da637472900382838869_1364969609"
		srv := newServer(t, emulator.Config{SeedData: true})
		srv.Script(id, emulator.Answer{BodyBytes: 100_000}, emulator.Answer{BodyBytes: 100_000})
		g := get(t, srv, "/v1.0/security/alerts_v2/"+id, tokenFor(t, srv, emulator.GraphScope))
		var alert graphAlert
		if err := json.Unmarshal([]byte(g.body), &alert); err != nil || alert.ID != id || len(alert.Evidence) != 1 || len(g.body) != 100_000 {
			t.Errorf("graph: %d bytes, %+v, %v", len(g.body), alert.ID, err)
		}
		m := get(t, srv, "/api/alerts/"+id+"/domains", tokenFor(t, srv, emulator.Scope))
		if !strings.HasPrefix(m.body, `{"value":[{"host":"`) || !json.Valid([]byte(m.body)) || len(m.body) != 100_000 {
			t.Errorf("mde: %d bytes %.40s", len(m.body), m.body)
		}
	})
}

// TestTokenRolesPerResource: a token's roles are the app roles granted on
// its own resource: a Graph permission (SecurityIncident.Read.All) is in
// Graph's token only, an endpoint API permission (Ip.Read.All) in the
// endpoint API's only.
func TestTokenRolesPerResource(t *testing.T) {
	srv := newServer(t, emulator.Config{
		Permissions: []string{emulator.GraphPermission, "SecurityIncident.Read.All", emulator.MDEPermission, "Ip.Read.All"}})
	graphRoles, _ := claimsOf(t, tokenFor(t, srv, emulator.GraphScope))["roles"].([]any)
	mdeRoles, _ := claimsOf(t, tokenFor(t, srv, emulator.Scope))["roles"].([]any)
	if want := []any{emulator.GraphPermission, "SecurityIncident.Read.All"}; !reflect.DeepEqual(graphRoles, want) {
		t.Errorf("graph roles %v, want %v", graphRoles, want)
	}
	if want := []any{emulator.MDEPermission, "Ip.Read.All"}; !reflect.DeepEqual(mdeRoles, want) {
		t.Errorf("mde roles %v, want %v", mdeRoles, want)
	}
}
