package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/quota"
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

// TestStatusTenantsSharedQuota: with QUOTA_SCOPE=shared and tenants whose
// counts of a window differ (contoso keeps DEFENDER_RATE_LIMITS, 100/1m,
// fabrikam has 50/1m), status shows each tenant's calls, as the quota
// streams count them, against its own limit.
func TestStatusTenantsSharedQuota(t *testing.T) {
	o := newOpsEnv(t, true)
	writeTenantsFile(t, o)
	cfg, err := config.Load(config.MapEnv(o.vars))
	if err != nil {
		t.Fatal(err)
	}
	list, err := config.LoadTenants(cfg.TenantsFile, cfg, config.MapEnv(o.vars))
	if err != nil {
		t.Fatal(err)
	}
	layout, limits, err := sharedQuota(cfg, list)
	if err != nil {
		t.Fatal(err)
	}
	if err := prepareQuotaLimits(t.Context(), o.js, cfg, layout, limits, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for i, calls := range []int{3, 2} { // contoso, fabrikam
		q, err := quota.NewShared(layout, registration(&list[i]), list[i].RateLimits, quota.WithHold(cfg.DefenderTimeout))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = q.Run(ctx, o.js)
		}()
		for range calls {
			release, _, err := q.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			release()
		}
		cancel()
		<-done
	}
	out := o.mustRun(t, "status")
	if strings.Contains(out, "TENANTS_FILE not used") {
		t.Fatalf("status refused the tenants file:\n%s", out)
	}
	want := map[string]string{"contoso": "3/100 per 1m, 3/1500 per 1h", "fabrikam": "2/50 per 1m, 2/800 per 1h"}
	rows := map[string][]string{}
	_, tenantsSection, _ := strings.Cut(out, "TENANTS: 2 configured")
	for line := range strings.Lines(tenantsSection) {
		f := strings.Fields(line)
		if len(f) > 0 && want[f[0]] != "" && !strings.HasSuffix(strings.Join(f, " "), want[f[0]]) {
			t.Errorf("line of %s %q, want it to end in %q\n%s", f[0], strings.TrimSpace(line), want[f[0]], out)
		}
		if len(f) > 4 && f[0] == "tenant" {
			rows[f[1]] = append(rows[f[1]], strings.Join(f[2:5], " "))
		}
	}
	if got := rows["contoso"]; !slices.Equal(got, []string{"1m 100 3", "1h 1500 3"}) {
		t.Errorf("quota rows of contoso %v, want its 100/1m and 1500/1h\n%s", got, out)
	}
	if got := rows["fabrikam"]; !slices.Equal(got, []string{"1m 50 2", "1h 800 2"}) {
		t.Errorf("quota rows of fabrikam %v, want its 50/1m and 800/1h\n%s", got, out)
	}
}

// TestStatusTenantsNamedByResults: without TENANTS_FILE, results of more
// than one tenant make a line per tenant, with the requests stored on its
// subject and those of them still without a result.
func TestStatusTenantsNamedByResults(t *testing.T) {
	o := newOpsEnv(t, true)
	o.vars["QUOTA_SCOPE"] = "process"
	a := o.requestOn(t, "contoso", "alert_a")
	b := o.requestOn(t, "contoso", "alert_b")
	c := o.requestOn(t, "fabrikam", "alert_c")
	o.requestOn(t, "contoso", "alert_pending")
	o.tenantFailure(t, "contoso", "alert_a", message.KindUnavailable, a)
	ok := message.Success("alert_b", nil, 3, false, time.Now())
	ok.Tenant = "contoso"
	o.result(t, ok, b)
	o.tenantFailure(t, "fabrikam", "alert_c", message.KindNotFound, c)

	out := o.mustRun(t, "status")
	lines := map[string]string{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			lines[f[0]] = strings.Join(f, " ")
		}
	}
	for first, want := range map[string]string{
		"TENANTS":  "TENANTS named by the results",
		"contoso":  "contoso 2 1 (1 unavailable) 3 1 3/100 per 1m, 3/1500 per 1h",
		"fabrikam": "fabrikam 1 1 (1 not_found) 1 0 0/100 per 1m, 0/1500 per 1h",
	} {
		if lines[first] != want {
			t.Errorf("line %q, want %q\n%s", lines[first], want, out)
		}
	}
}
