package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// writeTenantsFile writes a tenants file of contoso and fabrikam (whose
// limits differ from DEFENDER_RATE_LIMITS) with their secrets in
// variables, and points o's environment at it.
func writeTenantsFile(t *testing.T, o *opsEnv) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	doc := "tenants:\n" +
		"  - name: contoso\n" +
		"    tenantId: 6f1c2b9e-0000-4000-8000-000000000001\n" +
		"    clientId: 0a3e5f7d-0000-4000-8000-000000000002\n" +
		"    clientSecretEnv: CONTOSO_SECRET\n" +
		"  - name: fabrikam\n" +
		"    tenantId: 6f1c2b9e-0000-4000-8000-000000000003\n" +
		"    clientId: 0a3e5f7d-0000-4000-8000-000000000002\n" +
		"    clientSecretEnv: FABRIKAM_SECRET\n" +
		"    rateLimits: 50/1m,800/1h\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	o.vars["TENANTS_FILE"] = file
	o.vars["CONTOSO_SECRET"] = "contoso-secret-value"
	o.vars["FABRIKAM_SECRET"] = "fabrikam-secret-value"
}

// TestStatusTenants: with TENANTS_FILE, status has a line per tenant of the
// file (also one without results), any other tenant the results name, and
// the results that name none.
func TestStatusTenants(t *testing.T) {
	o := newOpsEnv(t, true)
	o.vars["QUOTA_SCOPE"] = "process"
	writeTenantsFile(t, o)
	c1 := o.requestOn(t, "contoso", "c1")
	fail := message.Failure("c1", &connector.Error{Kind: message.KindUnavailable, Message: "down"}, 2, time.Now())
	fail.Tenant = "contoso"
	o.result(t, fail, c1)
	c2 := o.requestOn(t, "contoso", "c2")
	ok := message.Success("c2", nil, 1, false, time.Now())
	ok.Tenant = "contoso"
	o.result(t, ok, c2)
	f1 := o.requestOn(t, "fabrikam", "f1")
	ok = message.Success("f1", nil, 3, false, time.Now())
	ok.Tenant = "fabrikam"
	o.result(t, ok, f1)
	n1 := o.requestOn(t, "", `{"alertId":"n1","tenant":"nobody"}`)
	o.tenantFailure(t, "", "n1", message.KindUnknownTenant, n1)
	w1 := o.requestOn(t, "northwind", "w1")
	ok = message.Success("w1", nil, 0, true, time.Now())
	ok.Tenant = "northwind" // removed from the file since
	o.result(t, ok, w1)

	out := o.mustRun(t, "status")
	lines := map[string]string{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 0 {
			lines[f[0]] = strings.Join(f, " ")
		}
	}
	for first, want := range map[string]string{
		"TENANTS:":  "TENANTS: 2 configured",
		"contoso":   "contoso 2 1 (1 unavailable) 2 0 3/100 per 1m, 3/1500 per 1h",
		"fabrikam":  "fabrikam 1 0 1 0 3/50 per 1m, 3/800 per 1h",
		"northwind": "northwind (not configured) 1 0 1 0 0/100 per 1m, 0/1500 per 1h",
		"(none":     "(none named) 1 1 (1 unknown_tenant) - - 0/100 per 1m, 0/1500 per 1h",
	} {
		if lines[first] != want {
			t.Errorf("line %q, want %q\n%s", lines[first], want, out)
		}
	}
	if strings.Contains(out, "secret-value") {
		t.Errorf("status shows a secret:\n%s", out)
	}

	// A file status cannot use (a secret is not in this environment)
	// leaves out the lines per tenant, not the screen.
	delete(o.vars, "CONTOSO_SECRET")
	out = o.mustRun(t, "status")
	if !strings.Contains(out, "TENANTS: TENANTS_FILE not used:") || !strings.Contains(out, "contoso") || !strings.Contains(out, "FAILURES IN THE LAST HOUR: 2") {
		t.Errorf("status with an unusable tenants file:\n%s", out)
	}
	if strings.Contains(out, "secret-value") {
		t.Errorf("status shows a secret:\n%s", out)
	}

	// Without the file, results of one tenant make no tenant lines.
	o2 := newOpsEnv(t, true)
	o2.vars["QUOTA_SCOPE"] = "process"
	s := o2.request(t, "s", nil)
	ok = message.Success("s", nil, 1, false, time.Now())
	ok.Tenant = "default"
	o2.result(t, ok, s)
	if out := o2.mustRun(t, "status"); strings.Contains(out, "TENANTS") {
		t.Errorf("tenant lines for the one tenant default:\n%s", out)
	}
}
