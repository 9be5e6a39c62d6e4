package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/emulator"
)

// TestGetTenant: with TENANTS_FILE, get asks the Defender of the tenant
// --tenant names, with that tenant's credential, and its results name the
// tenant; a tenant that is not in the file, or no --tenant when no tenant
// is called default, is exit status 2.
func TestGetTenant(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{Alerts: map[string][]string{"a1": {"contoso.example"}}})
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	secret := filepath.Join(dir, "contoso")
	if err := os.WriteFile(secret, []byte(srv.ClientSecret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tenants.yaml")
	doc := "tenants:\n" +
		"  - name: contoso\n" +
		"    tenantId: " + srv.TenantID() + "\n" +
		"    clientId: " + srv.ClientID() + "\n" +
		"    clientSecretFile: " + secret + "\n" +
		"    apiUrl: " + srv.URL + "\n" +
		"    authorityHost: " + srv.AuthorityHost() + "\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := getEnv(srv, "AZURE_TENANT_ID", "", "AZURE_CLIENT_ID", "", "AZURE_CLIENT_SECRET", "", "TENANTS_FILE", file)

	r := runGetTest(t, srv, lookup, "", "--tenant", "contoso", "a1")
	if r.err != nil || len(r.lines) != 1 {
		t.Fatalf("get --tenant contoso: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if l := r.lines[0]; l["tenant"] != "contoso" || l["status"] != "success" || strings.Join(anyStrings(l["domains"]), ",") != "contoso.example" {
		t.Errorf("result %v", l)
	}
	for _, args := range [][]string{{"a1"}, {"--tenant", "initech", "a1"}} {
		r := runGetTest(t, srv, lookup, "", args...)
		if exitStatus(r.err) != 2 || !strings.Contains(r.err.Error(), "not configured") {
			t.Errorf("get %v: exit %d (%v), want 2 naming the tenant", args, exitStatus(r.err), r.err)
		}
	}
	if srv.TokensIssued() != 1 {
		t.Errorf("%d tokens issued, want 1", srv.TokensIssued())
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		str, _ := s.(string)
		out = append(out, str)
	}
	return out
}
