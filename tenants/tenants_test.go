package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

type answer string

func (a answer) Domains(context.Context, string) (connector.Result, error) {
	return connector.Result{Domains: []string{string(a)}}, nil
}

func TestSetResolvesAndRoutes(t *testing.T) {
	list := []config.Tenant{
		{Name: "contoso", Credential: connector.CredentialConfig{TenantID: "contoso.onmicrosoft.com"}},
		{Name: "fabrikam", Credential: connector.CredentialConfig{TenantID: "fabrikam.onmicrosoft.com"}},
	}
	set, err := tenants.New(list, func(t *config.Tenant) (tenants.Lookup, error) { return answer(t.Name + ".example"), nil })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		subject, body, entra string
		want                 string
		named                bool
		kind                 message.Kind
	}{
		{subject: "contoso", want: "contoso", named: true},
		{body: "fabrikam", want: "fabrikam", named: true},
		{entra: "FABRIKAM.onmicrosoft.com", want: "fabrikam", named: true},
		{subject: "contoso", body: "fabrikam", kind: message.KindInvalidRequest},
		{subject: "initech", kind: message.KindUnknownTenant},
		{kind: message.KindUnknownTenant},
	}
	for _, tt := range tests {
		name, named, err := set.Resolve(tt.subject, tt.body, tt.entra)
		if tt.kind != "" {
			if message.KindOf(err) != tt.kind || err == nil {
				t.Errorf("Resolve(%q, %q, %q) error %v, want kind %s", tt.subject, tt.body, tt.entra, err, tt.kind)
			}
			continue
		}
		if err != nil || name != tt.want || named != tt.named {
			t.Errorf("Resolve(%q, %q, %q) = %q, %v, %v; want %q, %v", tt.subject, tt.body, tt.entra, name, named, err, tt.want, tt.named)
		}
	}
	for _, name := range []string{"contoso", "fabrikam"} {
		r, err := set.Domains(t.Context(), name, "a1")
		if err != nil || len(r.Domains) != 1 || r.Domains[0] != name+".example" {
			t.Errorf("Domains for %s: %v, %v", name, r.Domains, err)
		}
	}
	if _, err := set.Domains(t.Context(), "initech", "a1"); message.KindOf(err) != message.KindUnknownTenant {
		t.Errorf("Domains for a tenant not configured: %v", err)
	}
	broken := errors.New("no credential")
	if _, err := tenants.New(list, func(*config.Tenant) (tenants.Lookup, error) { return nil, broken }); !errors.Is(err, broken) {
		t.Errorf("New with a lookup that cannot be built: %v", err)
	}
}

// TestRebuildKeepsUnchangedTenants: a reload keeps the lookup (token
// cache, quota, cooldown) of a tenant whose configuration is unchanged and
// builds new ones for changed and added tenants; the router answers with
// the set swapped in.
func TestRebuildKeepsUnchangedTenants(t *testing.T) {
	contoso := config.Tenant{Name: "contoso", APIURL: "https://a.example", Credential: connector.CredentialConfig{TenantID: "contoso.onmicrosoft.com"}}
	fabrikam := config.Tenant{Name: "fabrikam", APIURL: "https://a.example", Credential: connector.CredentialConfig{TenantID: "fabrikam.onmicrosoft.com"}}
	var built []string
	build := func(t *config.Tenant) (tenants.Lookup, error) {
		built = append(built, t.Name)
		return answer(t.Name + "@" + t.APIURL), nil
	}
	old, err := tenants.New([]config.Tenant{contoso, fabrikam}, build)
	if err != nil {
		t.Fatal(err)
	}
	router := tenants.NewRouter(old)
	changed := fabrikam
	changed.APIURL = "https://b.example"
	initech := config.Tenant{Name: "initech", Credential: connector.CredentialConfig{TenantID: "initech.onmicrosoft.com"}}
	built = nil
	next, err := tenants.Rebuild(old, []config.Tenant{contoso, changed, initech}, build)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(built, ",") != "fabrikam,initech" {
		t.Errorf("built %v, want the changed and the added tenant only", built)
	}
	if a, b := mustLookup(t, old, "contoso"), mustLookup(t, next, "contoso"); a != b {
		t.Error("the unchanged tenant got a new lookup")
	}
	if _, _, err := router.Resolve("initech", "", ""); message.KindOf(err) != message.KindUnknownTenant {
		t.Errorf("before the swap: %v", err)
	}
	router.Swap(next)
	if r, err := router.Domains(t.Context(), "fabrikam", "a1"); err != nil || r.Domains[0] != "fabrikam@https://b.example" {
		t.Errorf("after the swap: %v, %v", r.Domains, err)
	}
}

func mustLookup(t *testing.T, s *tenants.Set, name string) tenants.Lookup {
	t.Helper()
	l, ok := s.Lookup(name)
	if !ok {
		t.Fatalf("no lookup for %s", name)
	}
	return l
}

func TestResolve(t *testing.T) {
	const (
		contosoID  = "6f1c2b9e-0000-4000-8000-0000000000c0"
		fabrikamID = "6f1c2b9e-0000-4000-8000-0000000000fa"
		strangerID = "00000000-0000-4000-8000-0000000000ff"
	)
	mk := func(names ...string) *tenants.Set {
		list := make([]config.Tenant, 0, len(names)/2)
		for i := 0; i+1 < len(names); i += 2 {
			list = append(list, config.Tenant{Name: names[i], Credential: connector.CredentialConfig{TenantID: names[i+1]}})
		}
		set, err := tenants.New(list, func(t *config.Tenant) (tenants.Lookup, error) { return answer(t.Name), nil })
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	withDefault := mk("contoso", contosoID, "fabrikam", fabrikamID, "default", contosoID)
	noDefault := mk("contoso", contosoID, "fabrikam", fabrikamID)
	byDomain := mk("fabrikam", "fabrikam.onmicrosoft.com", "default", "default.onmicrosoft.com")

	tests := []struct {
		name                   string
		set                    *tenants.Set
		subject, body, entraID string
		want                   string
		named                  bool
		kind                   message.Kind
	}{
		{"by subject", noDefault, "contoso", "", "", "contoso", true, ""},
		{"by body", noDefault, "", "fabrikam", "", "fabrikam", true, ""},
		{"subject and body agree", noDefault, "contoso", "contoso", "", "contoso", true, ""},
		{"subject and body disagree", noDefault, "contoso", "fabrikam", "", "", true, message.KindInvalidRequest},
		{"unknown by subject", noDefault, "tailspin", "", "", "", true, message.KindUnknownTenant},
		{"unknown by body", withDefault, "", "tailspin", "", "", true, message.KindUnknownTenant},
		{"by Entra tenant ID", noDefault, "", "", strings.ToUpper(fabrikamID), "fabrikam", true, ""},
		{"Entra tenant ID agrees", noDefault, "fabrikam", "", fabrikamID, "fabrikam", true, ""},
		{"Entra tenant ID disagrees", noDefault, "contoso", "", fabrikamID, "", true, message.KindInvalidRequest},
		{"Entra tenant ID shared by two tenants, named", withDefault, "default", "", contosoID, "default", true, ""},
		{"Entra tenant ID shared by two tenants, not named", withDefault, "", "", contosoID, "", true, message.KindInvalidRequest},
		{"Entra tenant ID not configured, nothing named", withDefault, "", "", strangerID, "", false, message.KindUnknownTenant},
		{"Entra tenant ID not configured, tenant named", withDefault, "contoso", "", strangerID, "", true, message.KindUnknownTenant},
		{"Entra tenant ID not configured, named tenant by domain", byDomain, "fabrikam", "", strangerID, "fabrikam", true, ""},
		{"Entra tenant ID not configured, default by domain", byDomain, "", "", strangerID, "", false, message.KindUnknownTenant},
		{"nothing named, default", withDefault, "", "", "", "default", false, ""},
		{"nothing named, no default", noDefault, "", "", "", "", false, message.KindUnknownTenant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, named, err := tc.set.Resolve(tc.subject, tc.body, tc.entraID)
			if tc.kind != "" {
				if err == nil || message.KindOf(err) != tc.kind {
					t.Fatalf("tenant %q, error %v; want kind %s", got, err, tc.kind)
				}
				return
			}
			if err != nil || got != tc.want || named != tc.named {
				t.Fatalf("tenant %q named %v error %v; want %q named %v", got, named, err, tc.want, tc.named)
			}
		})
	}
}

// TestEnvironmentTenantRouting: without TENANTS_FILE, an alert object
// whose Entra tenantId is not the GUID of AZURE_TENANT_ID is an unknown
// tenant, never looked up with the one tenant's credential; when
// AZURE_TENANT_ID is a domain name the GUID cannot be compared with it,
// and the one tenant serves the alert.
func TestEnvironmentTenantRouting(t *testing.T) {
	const (
		tenantGUID = "6f1c2b9e-0000-4000-8000-000000000001"
		stranger   = "00000000-0000-4000-8000-0000000000ff"
	)
	for _, tc := range []struct {
		tenantID, entraID string
		kind              message.Kind
	}{
		{tenantGUID, strings.ToUpper(tenantGUID), ""},
		{tenantGUID, stranger, message.KindUnknownTenant},
		{"contoso.onmicrosoft.com", stranger, ""},
		{"contoso.onmicrosoft.com", "CONTOSO.onmicrosoft.com", ""},
	} {
		cfg, err := config.Load(config.MapEnv(map[string]string{"AZURE_TENANT_ID": tc.tenantID,
			"AZURE_CLIENT_ID": "0a3e5f7d-0000-4000-8000-000000000002", "AZURE_CLIENT_SECRET": "x"}))
		if err != nil {
			t.Fatal(err)
		}
		tn, err := cfg.EnvironmentTenant()
		if err != nil {
			t.Fatal(err)
		}
		set, err := tenants.New([]config.Tenant{tn}, func(*config.Tenant) (tenants.Lookup, error) { return answer("a"), nil })
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := set.Resolve("", "", tc.entraID)
		if (tc.kind == "" && (err != nil || got != config.DefaultTenant)) || (tc.kind != "" && message.KindOf(err) != tc.kind) {
			t.Errorf("AZURE_TENANT_ID %s, an alert of %s: %q, %v; want kind %q", tc.tenantID, tc.entraID, got, err, tc.kind)
		}
	}
}

// TestResolveErrorsAreBounded: a tenant name a request chose (64 KiB of
// control characters, say) is cut and made printable in the error, which
// is logged and stored as the result's message.
func TestResolveErrorsAreBounded(t *testing.T) {
	set, err := tenants.New([]config.Tenant{{Name: "contoso"}}, func(t *config.Tenant) (tenants.Lookup, error) { return answer(t.Name), nil })
	if err != nil {
		t.Fatal(err)
	}
	hostile := strings.Repeat("\x7f\x1b", 32<<10)
	for _, args := range [][2]string{{hostile, ""}, {"contoso", hostile}} {
		_, _, err := set.Resolve(args[0], args[1], "")
		if err == nil || len(err.Error()) > 512 || strings.ContainsAny(err.Error(), "\x7f\x1b") {
			t.Errorf("Resolve error of %d bytes: %.200q", len(fmt.Sprint(err)), fmt.Sprint(err))
		}
	}
}
