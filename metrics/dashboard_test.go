package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
)

// dashboardFile is the Grafana dashboard the Helm chart ships.
const dashboardFile = "../deploy/helm/alert-domains/files/dashboard.json"

// TestDashboardMetricsAreExported checks that every alert_domains_*
// metric the dashboard queries is one the service exports, and every label
// a query selects, groups by or lists (label_values) is one of that
// metric's labels or one Prometheus adds to every series it scrapes, so
// that no panel or variable stays empty after a metric or label is renamed.
func TestDashboardMetricsAreExported(t *testing.T) {
	exported := exportedFamilies(t)
	queries := dashboardQueries(t)
	var queried []string
	for _, q := range queries {
		queried = append(queried, metricName.FindAllString(q, -1)...)
	}
	slices.Sort(queried)
	if queried = slices.Compact(queried); len(queried) < 10 {
		t.Fatalf("the dashboard queries only %v", queried)
	}
	for _, q := range queries {
		for _, p := range queryProblems(q, exported) {
			t.Errorf("dashboard query %q: %s", q, p)
		}
	}
}

// TestDashboardPerTenant: the dashboard has a multi-select tenant variable
// from the service's own label values, and the per-tenant panels (results
// by status, quota used against the limit, quota wait) select by it.
func TestDashboardPerTenant(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type variable struct {
		Name       string `json:"name"`
		Multi      bool   `json:"multi"`
		IncludeAll bool   `json:"includeAll"`
		Definition string `json:"definition"`
	}
	var dash struct {
		Templating struct {
			List []variable `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(dash.Templating.List, func(v variable) bool { return v.Name == "tenant" })
	if i < 0 {
		t.Fatal("the dashboard has no tenant variable")
	}
	if v := dash.Templating.List[i]; !v.Multi || !v.IncludeAll || !strings.HasPrefix(v.Definition, "label_values(alert_domains_") || !strings.HasSuffix(v.Definition, ", tenant)") {
		t.Errorf("tenant variable %+v: want multi-select with All, from label_values(alert_domains_…, tenant)", v)
	}
	for _, metric := range []string{"alert_domains_results_total", "alert_domains_quota_used_calls", "alert_domains_quota_limit_calls", "alert_domains_quota_wait_seconds_bucket"} {
		found := false
		for _, p := range dash.Panels {
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, metric+"{") && strings.Contains(tg.Expr, `tenant=~"$tenant"`) && regexp.MustCompile(`by \([^)]*\btenant\b`).MatchString(tg.Expr) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no panel shows %s per tenant of $tenant", metric)
		}
	}
}

// TestDashboardCheckFindsUnknownNames: the check above fails a query of a
// metric or label the service does not export.
func TestDashboardCheckFindsUnknownNames(t *testing.T) {
	exported := exportedFamilies(t)
	for _, q := range []string{
		`sum(rate(alert_domains_results_totals[5m]))`,
		`sum by (tenant) (rate(alert_domains_deliveries_total[5m]))`,
		`max by (tenant, window) (alert_domains_quota_used_calls{tenants=~"$tenant"})`,
		`histogram_quantile(0.99, sum by (le, tenant) (rate(alert_domains_defender_call_duration_seconds_bucket[5m])))`,
		`label_values(alert_domains_requests_in_flight, tenant)`,
		`sum by (le) (rate(alert_domains_request_attempts_count[5m]))`,
	} {
		if len(queryProblems(q, exported)) == 0 {
			t.Errorf("query %q passed the check", q)
		}
	}
	for _, q := range []string{
		`sum by (tenant, status, kind) (rate(alert_domains_results_total{namespace=~"$namespace",tenant=~"$tenant",kind!="invalid_request"}[5m]))`,
		`max by (tenant, window) (alert_domains_quota_used_calls{tenant=~"$tenant"})`,
		`histogram_quantile(0.99, sum by (le, tenant) (rate(alert_domains_quota_wait_seconds_bucket{tenant=~"$tenant"}[5m])))`,
		`label_values(alert_domains_results_total{namespace=~"$namespace"}, tenant)`,
		`sum by (pod) (alert_domains_requests_in_flight)`,
	} {
		if p := queryProblems(q, exported); len(p) > 0 {
			t.Errorf("query %q: %v", q, p)
		}
	}
}

// family is what the service exports under one name.
type family struct {
	typ    string
	labels map[string]bool
}

// targetLabels are the labels Prometheus (through the chart's
// ServiceMonitor) adds to every series it scrapes.
var targetLabels = []string{"namespace", "pod", "service", "container", "endpoint", "job", "instance"}

var (
	metricName = regexp.MustCompile(`\balert_domains_[a-zA-Z0-9_]+`)
	selector   = regexp.MustCompile(`\b(alert_domains_[a-zA-Z0-9_]+)\s*\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	labelVals  = regexp.MustCompile(`label_values\(\s*(alert_domains_[a-zA-Z0-9_]+)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// seriesLabels are the labels of the series called name, and whether the
// service exports it: a family, or a histogram's _bucket (with le), _sum or
// _count.
func seriesLabels(name string, exported map[string]family) (map[string]bool, bool) {
	if f, ok := exported[name]; ok {
		return f.labels, true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, s)
		if f, found := exported[base]; ok && found && f.typ == "HISTOGRAM" {
			if s != "_bucket" {
				return f.labels, true
			}
			labels := map[string]bool{"le": true}
			for l := range f.labels {
				labels[l] = true
			}
			return labels, true
		}
	}
	return nil, false
}

// queryProblems are the names in query (PromQL, or a Grafana label_values
// variable query) that the service's series do not have: a metric it does
// not export; a label a selector matches that its metric lacks; a label of
// a grouping (by, without, on, ignoring) that one of the query's metrics
// lacks; a label label_values lists that its metric lacks.
func queryProblems(query string, exported map[string]family) []string {
	has := func(labels map[string]bool, l string) bool { return labels[l] || slices.Contains(targetLabels, l) }
	var problems []string
	names := metricName.FindAllString(query, -1)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if _, ok := seriesLabels(n, exported); !ok {
			problems = append(problems, fmt.Sprintf("%s is not exported", n))
		}
	}
	bare := quoted.ReplaceAllString(query, `""`)
	for _, m := range selector.FindAllStringSubmatch(bare, -1) {
		labels, ok := seriesLabels(m[1], exported)
		if !ok {
			continue
		}
		for _, l := range matcher.FindAllStringSubmatch(m[2], -1) {
			if !has(labels, l[1]) {
				problems = append(problems, fmt.Sprintf("%s has no label %s", m[1], l[1]))
			}
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(bare, -1) {
		for l := range strings.SplitSeq(g[1], ",") {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			for _, n := range names {
				if labels, ok := seriesLabels(n, exported); ok && !has(labels, l) {
					problems = append(problems, fmt.Sprintf("%s has no label %s to group by", n, l))
				}
			}
		}
	}
	for _, m := range labelVals.FindAllStringSubmatch(query, -1) {
		if labels, ok := seriesLabels(m[1], exported); ok && !has(labels, m[2]) {
			problems = append(problems, fmt.Sprintf("%s has no label %s to list", m[1], m[2]))
		}
	}
	return problems
}

// exportedFamilies gathers the registry of a Metrics that serves the one
// tenant "default" and has seen one of each event, so that every labelled
// family has a series.
func exportedFamilies(t *testing.T) map[string]family {
	t.Helper()
	m := metrics.New()
	m.SetTenants(map[string]connector.API{"default": connector.Graph})
	l := connector.NewLimiter([]connector.Limit{{Count: 100, Window: time.Minute}})
	if err := m.WatchQuota(func(string) metrics.Quota { return l }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SharedQuota(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TenantsReloads(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.Middleware()(func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		return consumer.Outcome{Action: consumer.Ack, Stored: true, Result: message.Success("a", nil, 1, false, now)}
	})(t.Context(), &consumer.Delivery{})
	m.Tenant("default", connector.Graph).DefenderCall(200, time.Millisecond)
	m.Tenant("default", connector.Graph).QuotaWait(time.Millisecond)
	m.SafetyNetAnswered(false)
	m.Ignored("request")

	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := make(map[string]family)
	for _, f := range families {
		labels := map[string]bool{}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		exported[f.GetName()] = family{typ: f.GetType().String(), labels: labels}
	}
	return exported
}

// dashboardQueries are the queries of the dashboard (panel targets and
// template variables), each once.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var queries []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(k, e)
			}
		case []any:
			for _, e := range v {
				walk(key, e)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				queries = append(queries, v)
			}
		}
	}
	walk("", dash)
	slices.Sort(queries)
	return slices.Compact(queries)
}
