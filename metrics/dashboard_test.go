package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/metrics"
)

// dashboardFile is the Grafana dashboard the Helm chart ships.
const dashboardFile = "../deploy/helm/alert-domains/files/dashboard.json"

// TestDashboardMetricsAreExported checks that every alert_domains_* metric
// the dashboard queries is one the service exports, so that no panel stays
// empty after a metric is renamed.
func TestDashboardMetricsAreExported(t *testing.T) {
	exported := exportedFamilies(t)
	queried := dashboardMetrics(t)
	if len(queried) < 10 {
		t.Fatalf("the dashboard queries only %v", queried)
	}
	for _, name := range queried {
		if _, ok := exported[name]; ok {
			continue
		}
		base, suffix := histogramBase(name)
		if typ, ok := exported[base]; ok && suffix != "" && typ == "HISTOGRAM" {
			continue
		}
		t.Errorf("the dashboard queries %s, which the service does not export", name)
	}
}

// histogramBase splits a histogram's series suffix off name.
func histogramBase(name string) (base, suffix string) {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			return b, s
		}
	}
	return name, ""
}

// exportedFamilies gathers the registry of a Metrics that has seen one of
// each event, so that every labelled family has a series.
func exportedFamilies(t *testing.T) map[string]string {
	t.Helper()
	m := metrics.New()
	if err := m.WatchQuota(connector.NewLimiter([]connector.Limit{{Count: 100, Window: time.Minute}})); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.Middleware()(func(ctx context.Context, d *handlers.Delivery) handlers.Outcome {
		return handlers.Outcome{Action: handlers.Ack, Stored: true, Result: handlers.Success("a", nil, 1, false, now)}
	})(t.Context(), &handlers.Delivery{})
	m.DefenderCall(200, time.Millisecond)
	m.QuotaWait(time.Millisecond)
	failing := m.InstrumentCache(&fakeCache{entries: map[string][]string{}, err: errors.New("bucket gone")})
	if _, _, err := failing.Get(t.Context(), "a"); err == nil {
		t.Fatal("the failing cache did not fail")
	}
	m.SafetyNetResult(handlers.Failure("a", connector.ErrUnavailable, 0, now), false)

	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := make(map[string]string)
	for _, f := range families {
		exported[f.GetName()] = f.GetType().String()
	}
	return exported
}

// dashboardMetrics are the alert_domains_* names in the dashboard's queries
// (panel targets and template variables), sorted, each once.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	name := regexp.MustCompile(`\balert_domains_[a-zA-Z0-9_]+`)
	var names []string
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
				names = append(names, name.FindAllString(v, -1)...)
			}
		}
	}
	walk("", dash)
	slices.Sort(names)
	return slices.Compact(names)
}
