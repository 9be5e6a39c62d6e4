package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
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

func newServer(t *testing.T, opts ...emulator.Option) *emulator.Server {
	t.Helper()
	srv := emulator.NewServer(opts...)
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
	srv := newServer(t)
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
	srv := newServer(t)
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
	srv := newServer(t, emulator.WithSeedData())
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
		{"invalid id", "/api/alerts/a.b/domains", tok, 400, `"code":"InvalidInput"`},
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
	if n := srv.Calls(); n != 7 {
		t.Errorf("Calls = %d, want 7 domains calls", n)
	}
	if n := srv.Answered(200); n != 3 {
		t.Errorf("Answered(200) = %d, want 3", n)
	}
}

func TestQuotaRetryAfter(t *testing.T) {
	srv := newServer(t, emulator.WithSeedData(), emulator.WithQuota(connector.Limit{Count: 2, Window: 90 * time.Second}))
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
	srv := newServer(t, emulator.WithAnyAlert(), emulator.WithAlert("five", "a", "b", "c", "d", "e"), emulator.WithPageSize(2))
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
	srv := newServer(t, emulator.WithSeedData(), emulator.WithFaultRate(1, 7))
	tok := token(t, srv)
	const id = "da637472900382838869_1364969609"
	const path = "/api/alerts/" + id + "/domains"
	if a := get(t, srv, path, tok); a.status != 503 || !strings.Contains(a.body, "InternalServerError") {
		t.Errorf("fault: %d %s", a.status, a.body)
	}
	srv.SetFaultRate(0)
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
	if n := srv.CallsFor(id); n != 5 {
		t.Errorf("CallsFor = %d, want 5", n)
	}
	if n := len(srv.CallTimes()); n != 5 {
		t.Errorf("%d call times, want 5", n)
	}
	srv.ExpireTokens()
	if a := get(t, srv, path, tok); a.status != 401 {
		t.Errorf("expired token: %d", a.status)
	}
}

func TestTokenLifetime(t *testing.T) {
	srv := newServer(t, emulator.WithTenant("t1", "c1", "s1"), emulator.WithTokenLifetime(-time.Second))
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
	e := emulator.NewHandler()
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
	srv := newServer(t)
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
	srv := newServer(t)
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
