package metrics_test

import (
	"context"
	"github.com/alert-domains/alert-domains/connector"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
)

// tenantValues are the values of the tenant label among the series of
// alert_domains_results_total, alert_domains_defender_calls_total and
// alert_domains_quota_wait_seconds.
func tenantValues(t *testing.T, m *metrics.Metrics) map[string]bool {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "alert_domains_results_total" && f.GetName() != "alert_domains_defender_calls_total" && f.GetName() != "alert_domains_quota_wait_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			found := false
			for _, l := range s.GetLabel() {
				if l.GetName() == "tenant" {
					values[l.GetValue()] = true
					found = true
				}
			}
			if !found {
				t.Errorf("%s series without a tenant label: %v", f.GetName(), s.GetLabel())
			}
		}
	}
	return values
}

func TestTenantLabel(t *testing.T) {
	m := metrics.New()
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "fabrikam": connector.Graph})
	// Exported from 0 for every configured tenant, and for none.
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="contoso"}`:                0,
		`alert_domains_results_total{api="graph",kind="unknown_tenant",status="failure",tenant="fabrikam"}`: 0,
		`alert_domains_results_total{api="",kind="unknown_tenant",status="failure",tenant=""}`:              0,
		`alert_domains_defender_calls_total{api="graph",code="429",tenant="fabrikam"}`:                      0,
		`alert_domains_defender_calls_total{api="",code="200",tenant=""}`:                                   0,
		`alert_domains_quota_wait_seconds_count{tenant="contoso"}`:                                          0,
		`alert_domains_quota_wait_seconds_count{tenant="fabrikam"}`:                                         0,
		`alert_domains_quota_wait_seconds_count{tenant=""}`:                                                 0,
	})

	hostile := []string{`evil"} 1` + "\n" + `alert_domains_results_total{x="`, "northwind", "Contoso", "contoso ", strings.Repeat("a", 10000)}
	// Results through the middleware, which the handler and the safety net
	// share.
	count := m.Middleware()(func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		res := message.Success("a", nil, 1, false, time.Now())
		res.Tenant = string(d.Data)
		return consumer.Outcome{Action: consumer.Ack, Stored: true, Result: res}
	})
	for range 2 {
		count(t.Context(), &consumer.Delivery{Data: []byte("contoso")})
		m.Tenant("contoso", connector.Graph).DefenderCall(200, time.Millisecond)
		m.Tenant("contoso", connector.Graph).QuotaWait(2 * time.Second)
	}
	for _, tenant := range hostile {
		res := message.Failure("a", &message.Error{Kind: message.KindUnknownTenant, Message: "unknown tenant"}, 0, time.Now())
		res.Tenant = tenant
		m.Middleware()(func(context.Context, *consumer.Delivery) consumer.Outcome {
			return consumer.Outcome{Action: consumer.Ack, Stored: true, Result: res}
		})(t.Context(), &consumer.Delivery{})
		m.Tenant(tenant, connector.Graph).DefenderCall(200, time.Millisecond)
		m.Tenant(tenant, connector.Graph).QuotaWait(time.Second)
	}
	m.Tenant(metrics.NoTenant, "").DefenderCall(503, time.Millisecond)
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="contoso"}`:   2,
		`alert_domains_results_total{api="",kind="unknown_tenant",status="failure",tenant=""}`: float64(len(hostile)),
		`alert_domains_defender_calls_total{api="graph",code="200",tenant="contoso"}`:          2,
		`alert_domains_defender_calls_total{api="graph",code="200",tenant=""}`:                 float64(len(hostile)),
		`alert_domains_defender_calls_total{api="",code="503",tenant=""}`:                      1,
		`alert_domains_defender_calls_total{api="graph",code="200",tenant="fabrikam"}`:         0,
		`alert_domains_quota_wait_seconds_count{tenant="contoso"}`:                             2,
		`alert_domains_quota_wait_seconds_sum{tenant="contoso"}`:                               4,
		`alert_domains_quota_wait_seconds_count{tenant=""}`:                                    float64(len(hostile)),
		`alert_domains_quota_wait_seconds_count{tenant="fabrikam"}`:                            0,
	})
	for v := range tenantValues(t, m) {
		if v != "" && v != "contoso" && v != "fabrikam" {
			t.Errorf("tenant label value %.60q is not a configured tenant", v)
		}
	}

	// A reload: fabrikam removed, northwind added; contoso keeps its counts.
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "northwind": connector.Graph})
	got := scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="contoso"}`:   2,
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="northwind"}`: 0,
		`alert_domains_defender_calls_total{api="graph",code="error",tenant="northwind"}`:      0,
		`alert_domains_quota_wait_seconds_count{tenant="northwind"}`:                           0,
	})
	if _, ok := got[`alert_domains_quota_wait_seconds_count{tenant="fabrikam"}`]; ok {
		t.Error("the removed tenant's quota wait is still exported")
	}
	if values := tenantValues(t, m); values["fabrikam"] || len(values) != 3 {
		t.Errorf("tenant label values after the reload %v, want contoso, northwind and none", values)
	}
	m.Tenant("fabrikam", connector.Graph).DefenderCall(200, time.Millisecond)
	m.Tenant("fabrikam", connector.Graph).QuotaWait(time.Second)
	if values := tenantValues(t, m); values["fabrikam"] {
		t.Errorf("a removed tenant's call brought its series back: %v", values)
	}
}

// TestAPILabel: each tenant's series carry the API that answers for it,
// from 0; a tenant moved to another API gets fresh series of that API and
// loses the old ones; a tenant's missing permission is a gauge at 1 until
// a token has it.
func TestAPILabel(t *testing.T) {
	m := metrics.New()
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "fabrikam": connector.MDE})
	got := scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="contoso"}`:                 0,
		`alert_domains_results_total{api="mde",kind="forbidden",status="failure",tenant="fabrikam"}`:         0,
		`alert_domains_results_total{api="graph",kind="unknown_tenant",status="failure",tenant=""}`:          0,
		`alert_domains_results_total{api="mde",kind="unknown_tenant",status="failure",tenant=""}`:            0,
		`alert_domains_defender_calls_total{api="mde",code="403",tenant="fabrikam"}`:                         0,
		`alert_domains_permission_missing{api="graph",permission="SecurityAlert.Read.All",tenant="contoso"}`: 0,
		`alert_domains_permission_missing{api="mde",permission="URL.Read.All",tenant="fabrikam"}`:            0,
	})
	if _, ok := got[`alert_domains_results_total{api="mde",kind="",status="success",tenant="contoso"}`]; ok {
		t.Error("a tenant on graph has series of mde")
	}

	m.Permission("contoso", connector.Graph, connector.PermissionMissing)
	m.Tenant("fabrikam", connector.MDE).DefenderCall(403, time.Millisecond)
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "fabrikam": connector.Graph})
	got = scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_permission_missing{api="graph",permission="SecurityAlert.Read.All",tenant="contoso"}`:  1,
		`alert_domains_permission_missing{api="graph",permission="SecurityAlert.Read.All",tenant="fabrikam"}`: 0,
		`alert_domains_defender_calls_total{api="graph",code="403",tenant="fabrikam"}`:                        0,
	})
	for _, gone := range []string{
		`alert_domains_defender_calls_total{api="mde",code="403",tenant="fabrikam"}`,
		`alert_domains_permission_missing{api="mde",permission="URL.Read.All",tenant="fabrikam"}`,
	} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s kept after the tenant moved to graph", gone)
		}
	}
	m.Permission("contoso", connector.Graph, connector.PermissionGranted)
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_permission_missing{api="graph",permission="SecurityAlert.Read.All",tenant="contoso"}`: 0,
	})
}
