package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/metrics"
)

// TestSharedQuotaCountsPerTenant: with QUOTA_SCOPE=shared, tenants whose
// counts of one window differ are served, each count in a stream of its
// own, DEFENDER_RATE_LIMITS's count keeping the stream it always had. Only
// tenants of one app registration whose rate limits differ (a count, or a
// window one gives and another not) are a configuration error naming the
// tenants and the field: their calls reach one quota.
func TestSharedQuotaCountsPerTenant(t *testing.T) {
	perMinute := func(n int) connector.Limit { return connector.Limit{Count: n, Window: time.Minute} }
	perHour := connector.Limit{Count: 1500, Window: time.Hour}
	cfg := &config.Config{
		Microsoft: config.Microsoft{TenantsFile: "/etc/alert-domains/tenants.yaml", RateLimits: []connector.Limit{perMinute(100), perHour}},
		Streams:   config.Streams{ConsumerName: "svc"},
	}
	tenant := func(name, tenantID string, limits ...connector.Limit) config.Tenant {
		return config.Tenant{Name: name, Cloud: "public", RateLimits: limits,
			Credential: connector.CredentialConfig{TenantID: tenantID, ClientID: "0a3e5f7d-0000-4000-8000-000000000002"}}
	}
	list := []config.Tenant{
		tenant("contoso", "contoso.example", perMinute(100), perHour),
		tenant("fabrikam", "fabrikam.example", perMinute(50), perHour),
		tenant("woodgrove", "woodgrove.example"),
		tenant("initech", "initech.example", perMinute(200)),
		tenant("initech-eu", "initech.example", perMinute(200)),
	}
	layout, limits, err := sharedQuota(cfg, list)
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Limit{perMinute(50), perMinute(100), perMinute(200), perHour}; !slices.Equal(limits, want) {
		t.Errorf("limits %v, want %v", limits, want)
	}
	for l, want := range map[connector.Limit]string{
		perMinute(100): "QUOTA_svc_60000ms",
		perMinute(50):  "QUOTA_svc_60000ms_50",
		perMinute(200): "QUOTA_svc_60000ms_200",
		perHour:        "QUOTA_svc_3600000ms",
	} {
		if got := layout.Stream(l); got != want {
			t.Errorf("stream of %v: %s, want %s", l, got, want)
		}
	}

	for _, limits := range [][]connector.Limit{{perMinute(150)}, {perMinute(200), perHour}, nil} {
		_, _, err = sharedQuota(cfg, append(list, tenant("initech-us", "initech.example", limits...)))
		var te *config.TenantsError
		if !errors.As(err, &te) || !errors.Is(err, config.ErrInvalid) || te.Tenant != "initech-us" || te.Field != "rateLimits" || !strings.Contains(err.Error(), `"initech"`) {
			t.Errorf("rate limits %v beside initech's of one app registration: %v", limits, err)
		}
	}
}

// TestReloadKeepsQuotaStreamNames: a reload may add a tenant with a count
// of its own for a window, or a new window, but not change the smallest
// count of a window DEFENDER_RATE_LIMITS does not give while tenants use
// it: that count names the streams every replica shares, and a replica
// renaming them alone would count apart. The refused file changes nothing.
func TestReloadKeepsQuotaStreamNames(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	tenant := func(name string, n int, rateLimits string) string {
		return fmt.Sprintf("  - name: %s\n    tenantId: 6f1c2b9e-0000-4000-8000-00000000000%d\n    clientId: 0a3e5f7d-0000-4000-8000-000000000002\n    clientSecretEnv: SECRET\n    rateLimits: %s\n", name, n, rateLimits)
	}
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(file, []byte("tenants:\n"+doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"DEFENDER_RATE_LIMITS": "none", "TENANTS_FILE": file, "SECRET": "s3cret"}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{lookupEnv: config.MapEnv(vars)}
	write(tenant("contoso", 1, "5/2s"))
	list, err := config.LoadTenants(file, cfg, e.lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newTenantClients(cfg, e, list, true, slog.New(slog.DiscardHandler), metrics.New(), nil)
	if err != nil {
		t.Fatal(err)
	}
	perTwoSeconds := func(n int) connector.Limit { return connector.Limit{Count: n, Window: 2 * time.Second} }

	write(tenant("contoso", 1, "5/2s") + tenant("fabrikam", 2, "10/2s") + tenant("initech", 3, "100/1m"))
	if _, _, err := c.reload(t.Context()); err != nil {
		t.Fatalf("a larger count and a new window: %v", err)
	}
	if got := c.layout.Stream(perTwoSeconds(5)); got != "QUOTA_alert-domains_2000ms" {
		t.Errorf("contoso's stream after the reload: %s", got)
	}
	if got := c.layout.Stream(perTwoSeconds(10)); got != "QUOTA_alert-domains_2000ms_10" {
		t.Errorf("fabrikam's stream after the reload: %s", got)
	}

	write(tenant("contoso", 1, "5/2s") + tenant("fabrikam", 2, "10/2s") + tenant("initech", 3, "100/1m") + tenant("woodgrove", 4, "2/2s"))
	if _, _, err := c.reload(t.Context()); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "from 5 to 2") {
		t.Errorf("a smaller count renaming the streams: %v, want it refused", err)
	}
	if got := c.layout.Stream(perTwoSeconds(5)); got != "QUOTA_alert-domains_2000ms" {
		t.Errorf("contoso's stream after a refused reload: %s", got)
	}
	if _, ok := c.router.Set().Lookup("woodgrove"); ok {
		t.Error("the refused file's tenant is served")
	}
}
