package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
)

const (
	tenantGUID = "6f1c2b9e-0000-4000-8000-000000000001"
	clientGUID = "0a3e5f7d-0000-4000-8000-000000000002"
	// secretValue must never appear in an error.
	secretValue = "s3cr3t-Value~that.must.not.leak"
)

// tenantsEnv is an environment with the tenants file's defaults and the
// variables that clientSecretEnv may name.
func tenantsEnv(extra map[string]string) map[string]string {
	env := map[string]string{"CONTOSO_SECRET": secretValue + "\n"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadTenants(t *testing.T, yaml string, env map[string]string) ([]config.Tenant, error) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "contoso.secret", secretValue+"\n")
	writeFile(t, dir, "cert.pem", "-----BEGIN CERTIFICATE-----\n")
	writeFile(t, dir, "cert.password", "pfx-password\n")
	writeFile(t, dir, "token", "eyJ...")
	yaml = strings.ReplaceAll(yaml, "$DIR", dir)
	path := writeFile(t, dir, "tenants.yaml", yaml)
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return config.LoadTenants(path, cfg, config.MapEnv(env))
}

func TestLoadTenants(t *testing.T) {
	file := `
tenants:
  - name: contoso
    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
    clientSecretFile: $DIR/contoso.secret
  - name: fabrikam
    tenantId: fabrikam.onmicrosoft.com
    clientId: ` + clientGUID + `
    clientSecretEnv: CONTOSO_SECRET
    cloud: gcc-high
    rateLimits: 50/1m,750/1h
  - name: tailspin
    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
    certificateFile: $DIR/cert.pem
    certificatePasswordFile: $DIR/cert.password
    apiUrl: https://eu.api.security.microsoft.com
  - name: wingtip
    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
    federatedTokenFile: $DIR/token
  - name: default
    tenantId: ` + tenantGUID + `
    managedIdentity: true
`
	tenants, err := loadTenants(t, file, tenantsEnv(map[string]string{"DEFENDER_RATE_LIMITS": "100/1m,1500/1h"}))
	if err != nil {
		t.Fatalf("LoadTenants: %v", err)
	}
	if len(tenants) != 5 {
		t.Fatalf("%d tenants, want 5", len(tenants))
	}
	byName := map[string]config.Tenant{}
	for _, tn := range tenants {
		byName[tn.Name] = tn
	}

	contoso := byName["contoso"]
	if contoso.Credential.ClientSecret != secretValue {
		t.Errorf("contoso secret from its file: got %d bytes, want the file without its newline", len(contoso.Credential.ClientSecret))
	}
	if contoso.API != connector.Graph || contoso.Cloud != "public" || contoso.APIURL != "https://graph.microsoft.com" ||
		contoso.Scope != "https://graph.microsoft.com/.default" {
		t.Errorf("contoso defaults: cloud %q api %q scope %q", contoso.Cloud, contoso.APIURL, contoso.Scope)
	}
	if len(contoso.RateLimits) != 2 || contoso.RateLimits[0] != (connector.Limit{Count: 100, Window: time.Minute}) {
		t.Errorf("contoso rate limits %v, want DEFENDER_RATE_LIMITS", contoso.RateLimits)
	}
	if strings.Contains(contoso.CredentialSource, secretValue) || !strings.Contains(contoso.CredentialSource, "clientSecretFile") {
		t.Errorf("credential source %q", contoso.CredentialSource)
	}

	fabrikam := byName["fabrikam"]
	if fabrikam.Credential.ClientSecret != secretValue {
		t.Errorf("fabrikam secret from CONTOSO_SECRET: %d bytes", len(fabrikam.Credential.ClientSecret))
	}
	if fabrikam.APIURL != "https://graph.microsoft.us" ||
		fabrikam.Credential.AuthorityHost != "https://login.microsoftonline.us/" {
		t.Errorf("a gcc-high tenant takes its cloud's hosts: api %q authority %q", fabrikam.APIURL, fabrikam.Credential.AuthorityHost)
	}
	if len(fabrikam.RateLimits) != 2 || fabrikam.RateLimits[0].Count != 50 {
		t.Errorf("fabrikam rate limits %v, want its own", fabrikam.RateLimits)
	}

	tailspin := byName["tailspin"]
	if tailspin.Credential.CertificatePassword != "pfx-password" || tailspin.APIURL != "https://eu.api.security.microsoft.com" {
		t.Errorf("tailspin: password %d bytes, api %q", len(tailspin.Credential.CertificatePassword), tailspin.APIURL)
	}
	if byName["wingtip"].Credential.FederatedTokenFile == "" {
		t.Error("wingtip: no federated token file")
	}
	def := byName["default"]
	if !def.Credential.ManagedIdentity || def.Credential.ClientID != "" {
		t.Errorf("default: managed identity %v, client %q", def.Credential.ManagedIdentity, def.Credential.ClientID)
	}
	if contoso.Cloud == fabrikam.Cloud {
		t.Error("two clouds are one")
	}
}

func TestLoadTenantsAuthorityFromEnvironment(t *testing.T) {
	// AZURE_AUTHORITY_HOST set is the default of every tenant, also of one
	// in another cloud (private clouds, test doubles).
	file := `{"tenants":[{"name":"a","tenantId":"` + tenantGUID + `","clientId":"` + clientGUID + `","clientSecretEnv":"CONTOSO_SECRET","cloud":"gcc"}]}`
	tenants, err := loadTenants(t, file, tenantsEnv(map[string]string{"AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := tenants[0].Credential.AuthorityHost; got != "https://127.0.0.1:8443/" {
		t.Errorf("authority %q, want AZURE_AUTHORITY_HOST", got)
	}
	if got := tenants[0].APIURL; got != "https://graph.microsoft.com" {
		t.Errorf("api %q, want Graph's host of the gcc cloud", got)
	}
}

// TestLoadTenantsAPI: a tenant's api: picks its API; the API's URL, scope
// and quota then follow that API (DEFENDER_API_URL and DEFENDER_SCOPE are
// the defaults of tenants of DEFENDER_API only; DEFENDER_RATE_LIMITS, when
// set, of every tenant), and the quota registration differs by API.
func TestLoadTenantsAPI(t *testing.T) {
	file := `
tenants:
  - name: contoso
    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
    clientSecretEnv: CONTOSO_SECRET
  - name: legacy
    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
    clientSecretEnv: CONTOSO_SECRET
    api: mde
  - name: graphed
    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
    clientSecretEnv: CONTOSO_SECRET
    api: graph
    cloud: gcc-high
`
	tenants, err := loadTenants(t, file, tenantsEnv(map[string]string{"DEFENDER_API_URL": "https://graph.example"}))
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]config.Tenant{}
	for _, tn := range tenants {
		by[tn.Name] = tn
	}
	for name, want := range map[string]struct {
		api        connector.API
		url, scope string
		limits     string
	}{
		"contoso": {connector.Graph, "https://graph.example", "https://graph.microsoft.com/.default", "[150/1m0s]"},
		"legacy":  {connector.MDE, "https://api.securitycenter.microsoft.com", "https://api.securitycenter.microsoft.com/.default", "[100/1m0s 1500/1h0m0s]"},
		"graphed": {connector.Graph, "https://graph.example", "https://graph.microsoft.us/.default", "[150/1m0s]"},
	} {
		tn := by[name]
		if tn.API != want.api || tn.APIURL != want.url || tn.Scope != want.scope || fmt.Sprint(tn.RateLimits) != want.limits {
			t.Errorf("%s: api %s url %s scope %s limits %v; want %+v", name, tn.API, tn.APIURL, tn.Scope, tn.RateLimits, want)
		}
	}
	contoso, legacy := by["contoso"], by["legacy"]
	if contoso.API == legacy.API || contoso.Credential != legacy.Credential {
		t.Error("one app registration on two APIs is not two quota registrations (API, cloud, tenant, client)")
	}

	tenants, err = loadTenants(t, file, tenantsEnv(map[string]string{"DEFENDER_API": "mde", "DEFENDER_RATE_LIMITS": "10/1s"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range tenants {
		if fmt.Sprint(tn.RateLimits) != "[10/1s]" {
			t.Errorf("%s: rate limits %v, want DEFENDER_RATE_LIMITS for every tenant", tn.Name, tn.RateLimits)
		}
	}
	if tenants[0].API != connector.MDE || tenants[2].API != connector.Graph {
		t.Errorf("api: %s, %s; want DEFENDER_API for a tenant without api:, its own otherwise", tenants[0].API, tenants[2].API)
	}

	_, err = loadTenants(t, `{"tenants":[{"name":"a","tenantId":"`+tenantGUID+`","clientId":"`+clientGUID+`","clientSecretEnv":"CONTOSO_SECRET","api":"defender"}]}`, tenantsEnv(nil))
	var te *config.TenantsError
	if !errors.As(err, &te) || te.Field != "api" {
		t.Errorf("api: defender: %v, want an error on the field api", err)
	}
}

func TestLoadTenantsErrors(t *testing.T) {
	ok := `    tenantId: ` + tenantGUID + `
    clientId: ` + clientGUID + `
`
	tests := []struct {
		name     string
		file     string
		env      map[string]string
		tenant   string // named in the error
		field    string // named in the error
		contains string
	}{
		{"inline secret", "tenants:\n  - name: contoso\n" + ok + "    clientSecret: " + secretValue + "\n",
			nil, "contoso", "clientSecret", "clientSecretFile or clientSecretEnv"},
		{"duplicate name", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n  - name: contoso\n" + ok + "    managedIdentity: true\n",
			nil, "contoso", "name", "duplicate"},
		{"unknown field", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    " + secretValue + ": eu\n",
			nil, "contoso", "", "unknown field (the key is not shown"},
		{"key in other capitals", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    TenantID: " + tenantGUID + "\n",
			nil, "contoso", "tenantId", "other capitals"},
		{"no credential", "tenants:\n  - name: contoso\n" + ok,
			nil, "contoso", "credential", "exactly one"},
		{"two credentials", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    clientSecretFile: $DIR/contoso.secret\n",
			nil, "contoso", "clientSecretEnv", "more than one credential"},
		{"bad name", "tenants:\n  - name: Contoso_EU\n" + ok + "    managedIdentity: true\n",
			nil, "tenants[0]", "name", "not a valid tenant name"},
		{"http api url", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    apiUrl: http://api.securitycenter.microsoft.com\n",
			nil, "contoso", "apiUrl", "https"},
		{"api url with credentials", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    apiUrl: https://user:" + secretValue + "@api.example.com\n",
			nil, "contoso", "apiUrl", "credentials"},
		{"http api url with credentials", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    apiUrl: http://user:" + secretValue + "@api.example.com\n",
			nil, "contoso", "apiUrl", "credentials"},
		{"secret variable unset", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: NOT_SET\n",
			nil, "contoso", "clientSecretEnv", "is not set"},
		{"secret file missing", "tenants:\n  - name: contoso\n" + ok + "    clientSecretFile: $DIR/missing\n",
			nil, "contoso", "clientSecretFile", "cannot be read"},
		{"password without certificate", "tenants:\n  - name: contoso\n" + ok + "    managedIdentity: true\n    certificatePasswordFile: $DIR/cert.password\n",
			nil, "contoso", "certificatePasswordFile", "goes with certificateFile"},
		{"bad cloud", "tenants:\n  - name: contoso\n" + ok + "    managedIdentity: true\n    cloud: moon\n",
			nil, "contoso", "cloud", "not one of"},
		{"bad rate limits", "tenants:\n  - name: contoso\n" + ok + "    managedIdentity: true\n    rateLimits: lots\n",
			nil, "contoso", "rateLimits", "count/window"},
		{"missing tenant id", "tenants:\n  - name: contoso\n    clientId: " + clientGUID + "\n    managedIdentity: true\n",
			nil, "contoso", "tenantId", "missing"},
		{"client id not a guid", "tenants:\n  - name: contoso\n    tenantId: " + tenantGUID + "\n    clientId: " + secretValue + "x\n    managedIdentity: true\n",
			nil, "contoso", "clientId", "not a GUID"},
		{"wrong type", "tenants:\n  - name: contoso\n" + ok + "    managedIdentity: \"yes\"\n",
			nil, "contoso", "managedIdentity", "true or false"},
		{"duplicate key", "tenants:\n  - name: contoso\n" + ok + "    clientSecretEnv: CONTOSO_SECRET\n    clientSecretEnv: " + secretValue + "\n",
			nil, "", "", "not valid YAML"},
		{"syntax error near a secret", "tenants:\n  - name: contoso\n    clientSecret: \"" + secretValue + "\n   :\n",
			nil, "", "", "not valid YAML"},
		{"unknown top-level key", "tenant:\n  - name: contoso\n",
			nil, "", "", "the one key tenants"},
		{"empty list", "tenants: []\n", nil, "", "", "no tenant"},
		{"AZURE variables as well", "tenants:\n  - name: contoso\n" + ok + "    managedIdentity: true\n",
			map[string]string{"AZURE_CLIENT_SECRET": secretValue}, "", "", "AZURE_CLIENT_SECRET is set as well"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadTenants(t, tc.file, tenantsEnv(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid (exit 2)", err)
			}
			msg := err.Error()
			if strings.Contains(msg, secretValue) {
				t.Fatalf("the error shows the secret: %s", msg)
			}
			if !strings.Contains(msg, "TENANTS_FILE") {
				t.Errorf("error %q does not name TENANTS_FILE", msg)
			}
			for _, want := range []string{tc.tenant, tc.field, tc.contains} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			var te *config.TenantsError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TenantsError", err)
			}
			if tc.field != "" && te.Field != tc.field {
				t.Errorf("field %q, want %q", te.Field, tc.field)
			}
		})
	}
}

func TestValidTenantName(t *testing.T) {
	for name, want := range map[string]bool{
		"contoso": true, "a": true, "0day": true, "contoso-eu": true, strings.Repeat("a", 63): true,
		"": false, "-a": false, "Contoso": false, "a_b": false, "a.b": false, "a*": false, "a>": false,
		strings.Repeat("a", 64): false, "a b": false,
	} {
		if got := config.ValidTenantName(name); got != want {
			t.Errorf("ValidTenantName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEnvironmentTenant(t *testing.T) {
	cfg, err := config.Load(config.MapEnv(map[string]string{
		"AZURE_TENANT_ID": tenantGUID, "AZURE_CLIENT_ID": clientGUID, "AZURE_CLIENT_SECRET": secretValue,
		"DEFENDER_CLOUD": "gcc", "DEFENDER_RATE_LIMITS": "10/1s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.EnvironmentTenant()
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != config.DefaultTenant || !got.Environment || got.Cloud != "gcc" || got.API != connector.Graph ||
		got.APIURL != "https://graph.microsoft.com" || got.Credential.ClientSecret != secretValue || got.RateLimits[0].Count != 10 {
		t.Errorf("environment tenant %s %s %s %v", got.Name, got.Cloud, got.APIURL, got.RateLimits)
	}
}

// TestHookEnv: HOOK_ENV names variables, never one that holds a secret of
// the service or of a tenant of the file; the error shows no value.
func TestHookEnv(t *testing.T) {
	cfg, err := config.Load(config.MapEnv(map[string]string{"HOOK_ENV": " SIEM_URL, ,PLAYBOOK_ID"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SIEM_URL", "PLAYBOOK_ID"}; !slices.Equal(cfg.HookVariables, want) {
		t.Errorf("HookVariables %q, want %q", cfg.HookVariables, want)
	}
	for _, name := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "NATS_PASSWORD", "NATS_TOKEN",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"} {
		_, err := config.Load(config.MapEnv(map[string]string{"HOOK_ENV": "SIEM_URL," + name}))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "HOOK_ENV") || !strings.Contains(err.Error(), name) {
			t.Errorf("HOOK_ENV naming %s: %v, want an error naming it", name, err)
		}
	}
	_, err = config.Load(config.MapEnv(map[string]string{"HOOK_ENV": "SIEM_URL=" + secretValue}))
	if err == nil || strings.Contains(err.Error(), secretValue) {
		t.Errorf("HOOK_ENV with a value: %v, want an error without it", err)
	}
	doc := "tenants:\n  - name: contoso\n    tenantId: " + tenantGUID + "\n    clientId: " + clientGUID + "\n    clientSecretEnv: CONTOSO_SECRET\n"
	_, err = loadTenants(t, doc, tenantsEnv(map[string]string{"HOOK_ENV": "CONTOSO_SECRET"}))
	var te *config.TenantsError
	if !errors.As(err, &te) || te.Field != "clientSecretEnv" || strings.Contains(err.Error(), secretValue) {
		t.Errorf("a tenant's secret variable named by HOOK_ENV: %v, want an error on clientSecretEnv", err)
	}
}

// TestTenantsFileOfOneDocument: a file of two YAML documents (two files
// joined with ---) is refused: only the first would be read, and the
// second's tenants silently not served. A leading --- is one document.
func TestTenantsFileOfOneDocument(t *testing.T) {
	tenant := func(name string) string {
		return "  - name: " + name + "\n    tenantId: " + tenantGUID + "\n    clientId: " + clientGUID + "\n    clientSecretFile: $DIR/contoso.secret\n"
	}
	if _, err := loadTenants(t, "# tenants\n---\ntenants:\n"+tenant("contoso"), tenantsEnv(nil)); err != nil {
		t.Errorf("one document after a leading ---: %v", err)
	}
	for _, doc := range []string{"tenants:\n" + tenant("contoso") + "---\ntenants:\n" + tenant("fabrikam"), "tenants:\n" + tenant("contoso") + "...\n"} {
		if list, err := loadTenants(t, doc, tenantsEnv(nil)); err == nil || !strings.Contains(err.Error(), "is not one YAML document") {
			t.Errorf("%q: %d tenants, %v; want it refused", doc, len(list), err)
		}
	}
}
