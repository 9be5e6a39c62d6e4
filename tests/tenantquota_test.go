package tests

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestTenantsQuotaMetrics: with two tenants in TENANTS_FILE, /metrics has
// each tenant's quota (limit and use per window) and quota wait from 0
// before any request; calls of one tenant raise that tenant's use and
// waits only; after a reload removes a tenant, its quota series are gone.
// With QUOTA_SCOPE=shared the use is read from the quota streams (each
// tenant has an app registration of its own here), with process from the
// tenant's own limiter.
func TestTenantsQuotaMetrics(t *testing.T) {
	t.Parallel()
	for _, scope := range []string{"shared", "process"} {
		t.Run(scope, func(t *testing.T) {
			t.Parallel()
			testTenantsQuotaMetrics(t, scope)
		})
	}
}

func testTenantsQuotaMetrics(t *testing.T, scope string) {
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	listen, base := httpEndpoint(t)
	env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam},
		"HTTP_LISTEN="+listen, "DEFENDER_RATE_LIMITS=50/1m,500/1h", "QUOTA_SCOPE="+scope)
	svc := testenv.StartServe(t, env)

	tenants := []string{"contoso", "fabrikam"}
	series := func(name, tenant, window string) string {
		if window == "" {
			return name + `{tenant="` + tenant + `"}`
		}
		return name + `{tenant="` + tenant + `",window="` + window + `"}`
	}
	// quotaTenants are the tenant label values of the quota series.
	quotaTenants := func(got map[string]float64) []string {
		var names []string
		for k := range got {
			if strings.HasPrefix(k, "alert_domains_quota_limit_calls{") || strings.HasPrefix(k, "alert_domains_quota_used_calls{") ||
				strings.HasPrefix(k, "alert_domains_quota_wait_seconds_count{") {
				_, rest, _ := strings.Cut(k, `tenant="`)
				name, _, _ := strings.Cut(rest, `"`)
				names = append(names, name)
			}
		}
		slices.Sort(names)
		return slices.Compact(names)
	}

	// From 0 before any request. A shared quota's use is exported once the
	// quota has read its streams.
	var got map[string]float64
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() bool {
		got = scrapeMetrics(t, base)
		for _, tenant := range tenants {
			for _, w := range []string{"1m", "1h"} {
				if _, ok := got[series("alert_domains_quota_used_calls", tenant, w)]; !ok {
					return false
				}
			}
		}
		return true
	}, "quota use exported for both tenants")
	for _, tenant := range tenants {
		for k, want := range map[string]float64{
			series("alert_domains_quota_limit_calls", tenant, "1m"):      50,
			series("alert_domains_quota_limit_calls", tenant, "1h"):      500,
			series("alert_domains_quota_used_calls", tenant, "1m"):       0,
			series("alert_domains_quota_used_calls", tenant, "1h"):       0,
			series("alert_domains_quota_wait_seconds_count", tenant, ""): 0,
		} {
			if v, ok := got[k]; !ok || v != want {
				t.Errorf("before any request %s = %v (exported %v), want %v", k, v, ok, want)
			}
		}
	}
	// Calls of no tenant wait for no quota: the empty tenant has a quota
	// wait series (from 0) but no quota.
	if names := quotaTenants(got); !slices.Equal(names, []string{"", "contoso", "fabrikam"}) {
		t.Errorf("quota series of tenants %q, want contoso, fabrikam and (waits only) none", names)
	}
	for k := range got {
		if strings.HasPrefix(k, "alert_domains_quota_") && strings.Contains(k, `tenant=""`) && !strings.HasPrefix(k, "alert_domains_quota_wait_seconds") {
			t.Errorf("quota series of no tenant: %s", k)
		}
	}

	// Two calls of contoso (an alert its Defender knows, one it does not),
	// none of fabrikam.
	publishTo(t, js, requestSubject+".contoso", sharedAlert)
	publishTo(t, js, requestSubject+".contoso", "da638000000000000000_2222222222")
	waitResults(t, js, 2, 30*time.Second)
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		got = scrapeMetrics(t, base)
		return got[series("alert_domains_quota_used_calls", "contoso", "1m")] == 2 &&
			got[series("alert_domains_quota_used_calls", "contoso", "1h")] == 2 &&
			got[series("alert_domains_quota_wait_seconds_count", "contoso", "")] == 2
	}, "contoso's two calls counted in its quota")
	for k, want := range map[string]float64{
		series("alert_domains_quota_used_calls", "fabrikam", "1m"):       0,
		series("alert_domains_quota_used_calls", "fabrikam", "1h"):       0,
		series("alert_domains_quota_wait_seconds_count", "fabrikam", ""): 0,
		series("alert_domains_quota_wait_seconds_count", "", ""):         0,
		series("alert_domains_quota_limit_calls", "contoso", "1m"):       50,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("after contoso's calls %s = %v (exported %v), want %v", k, v, ok, want)
		}
	}
	if n := fabrikam.emu.Calls(); n != 0 {
		t.Errorf("fabrikam's Defender was called %d times", n)
	}

	// A reload removes fabrikam: its quota series go.
	file := tenantsFileOf(env)
	full, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	onlyContoso := full[:strings.Index(string(full), "  - name: fabrikam")]
	if err := os.WriteFile(file, onlyContoso, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := svc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"msg":"tenants reloaded"`, 30*time.Second)
	got = scrapeMetrics(t, base)
	if names := quotaTenants(got); !slices.Equal(names, []string{"", "contoso"}) {
		t.Errorf("quota series after fabrikam was removed of tenants %q, want contoso and (waits only) none", names)
	}
	if v := got[series("alert_domains_quota_used_calls", "contoso", "1m")]; v != 2 {
		t.Errorf("contoso's quota use after the reload = %v, want 2", v)
	}
	svc.Stop(t)
}
