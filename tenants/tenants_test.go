package tenants_test

import (
	"context"
	"errors"
	"testing"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
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
		kind                 connector.Kind
	}{
		{subject: "contoso", want: "contoso", named: true},
		{body: "fabrikam", want: "fabrikam", named: true},
		{entra: "FABRIKAM.onmicrosoft.com", want: "fabrikam", named: true},
		{subject: "contoso", body: "fabrikam", kind: connector.KindInvalidRequest},
		{subject: "initech", kind: connector.KindUnknownTenant},
		{kind: connector.KindUnknownTenant},
	}
	for _, tt := range tests {
		name, named, err := set.Resolve(tt.subject, tt.body, tt.entra)
		if tt.kind != "" {
			if connector.KindOf(err) != tt.kind || err == nil {
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
	if _, err := set.Domains(t.Context(), "initech", "a1"); !errors.Is(err, connector.ErrUnknownTenant) {
		t.Errorf("Domains for a tenant not configured: %v", err)
	}
	broken := errors.New("no credential")
	if _, err := tenants.New(list, func(*config.Tenant) (tenants.Lookup, error) { return nil, broken }); !errors.Is(err, broken) {
		t.Errorf("New with a lookup that cannot be built: %v", err)
	}
}
