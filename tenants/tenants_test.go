package tenants_test

import (
	"context"
	"errors"
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
