package emulator_test

import (
	"errors"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

func TestTenantsServeEachTenantItsOwnAlerts(t *testing.T) {
	contoso := emulator.NewHandler(emulator.Config{
		TenantID: "00000000-0000-0000-0000-00000000c001", ClientID: "00000000-0000-0000-0000-00000000c002",
		ClientSecret: "contoso-secret",
		Alerts:       map[string][]string{"da1_1": {"contoso.example"}}})
	fabrikam := emulator.NewHandler(emulator.Config{
		TenantID: "00000000-0000-0000-0000-00000000f001", ClientID: "00000000-0000-0000-0000-00000000f002",
		ClientSecret: "fabrikam-secret",
		Alerts:       map[string][]string{"da1_1": {"fabrikam.example"}, "da2_2": {"only.fabrikam.example"}}})
	ts := httptest.NewTLSServer(emulator.Tenants{contoso, fabrikam})
	t.Cleanup(func() {
		contoso.Close()
		fabrikam.Close()
		ts.Close()
	})
	clientOf := func(e *emulator.Emulator, secret string) *connector.Client {
		cred, err := connector.NewCredential(connector.CredentialConfig{TenantID: e.TenantID(), ClientID: e.ClientID(), ClientSecret: secret,
			AuthorityHost: ts.URL + "/", Transport: ts.Client()})
		if err != nil {
			t.Fatal(err)
		}
		c, err := connector.New(connector.Graph, ts.URL, cred, emulator.GraphScope, connector.WithHTTPClient(ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name    string
		client  *connector.Client
		id      string
		want    []string
		wantErr message.Kind
	}{
		{"contoso", clientOf(contoso, "contoso-secret"), "da1_1", []string{"contoso.example"}, ""},
		{"fabrikam", clientOf(fabrikam, "fabrikam-secret"), "da1_1", []string{"fabrikam.example"}, ""},
		{"an alert of another tenant", clientOf(contoso, "contoso-secret"), "da2_2", nil, message.KindNotFound},
		{"another tenant's secret", clientOf(contoso, "fabrikam-secret"), "da1_1", nil, message.KindUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := tt.client.Domains(t.Context(), tt.id)
			var ce *connector.Error
			switch {
			case tt.wantErr != "" && (!errors.As(err, &ce) || ce.Kind != tt.wantErr):
				t.Errorf("Domains(%s) = %v, want %s", tt.id, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || !slices.Equal(res.Domains, tt.want)):
				t.Errorf("Domains(%s) = %+v, %v, want %v", tt.id, res, err, tt.want)
			}
		})
	}
	if contoso.Calls() != 2 || fabrikam.Calls() != 1 {
		t.Errorf("calls: contoso %d, fabrikam %d, want 2 and 1", contoso.Calls(), fabrikam.Calls())
	}
}
