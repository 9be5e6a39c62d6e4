package metrics_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
)

// scrape reads the metrics through Handler, as Prometheus would, and
// returns each series (name and labels as printed) with its value.
func scrape(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	return parse(t, rec.Body)
}

func parse(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	series := make(map[string]float64)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

func TestMiddlewareCountsStoredResults(t *testing.T) {
	m := metrics.New()
	now := time.Now()
	inFlight := -1.0
	outcomes := []consumer.Outcome{
		{Action: consumer.Ack, Stored: true, Result: message.Success("a", []string{"x"}, 1, false, now)},
		{Action: consumer.Ack, Stored: true, Result: message.Success("a", []string{"x"}, 0, true, now)},
		{Action: consumer.Ack, Stored: true, Result: message.Failure("b", connector.ErrNotFound, 3, now)},
		// Stored by an earlier delivery: not counted again.
		{Action: consumer.Ack, Stored: true, Duplicate: true, Result: message.Failure("b", connector.ErrNotFound, 1, now)},
		{Action: consumer.Retry, Result: message.Failure("c", connector.ErrUnavailable, 2, now)},
		{Action: consumer.Terminate, Stored: true, Result: message.Failure("", &message.Error{Kind: message.KindInvalidRequest}, 0, now)},
		{Action: consumer.HandBack},
	}
	i := 0
	h := m.Middleware()(func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		inFlight = scrape(t, m)["alert_domains_requests_in_flight"]
		i++
		return outcomes[i-1]
	})
	for range outcomes {
		h(t.Context(), &consumer.Delivery{})
	}
	if inFlight != 1 {
		t.Errorf("requests in flight inside the handler = %v, want 1", inFlight)
	}
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_results_total{api="",kind="",status="success",tenant=""}`:                2,
		`alert_domains_results_total{api="",kind="not_found",status="failure",tenant=""}`:       1,
		`alert_domains_results_total{api="",kind="invalid_request",status="failure",tenant=""}`: 1,
		`alert_domains_deliveries_total{action="ack"}`:                                          4,
		`alert_domains_deliveries_total{action="retry"}`:                                        1,
		`alert_domains_deliveries_total{action="terminate"}`:                                    1,
		`alert_domains_deliveries_total{action="hand_back"}`:                                    1,
		`alert_domains_request_attempts_count`:                                                  4,
		`alert_domains_request_attempts_sum`:                                                    4,
		`alert_domains_request_attempts_bucket{le="0"}`:                                         2,
		`alert_domains_request_attempts_bucket{le="1"}`:                                         3,
		`alert_domains_requests_in_flight`:                                                      0,
	})
}

func TestObserverCountsDefenderCallsAndQuotaWaits(t *testing.T) {
	m := metrics.New()
	o := m.Tenant(metrics.NoTenant, "")
	o.DefenderCall(200, 80*time.Millisecond)
	o.DefenderCall(200, 120*time.Millisecond)
	o.DefenderCall(429, 10*time.Millisecond)
	o.DefenderCall(0, 30*time.Second)
	o.QuotaWait(0)
	o.QuotaWait(2 * time.Second)
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_defender_calls_total{api="",code="200",tenant=""}`:   2,
		`alert_domains_defender_calls_total{api="",code="429",tenant=""}`:   1,
		`alert_domains_defender_calls_total{api="",code="error",tenant=""}`: 1,
		`alert_domains_defender_call_duration_seconds_count`:                4,
		`alert_domains_defender_call_duration_seconds_bucket{le="0.1"}`:     2,
		`alert_domains_defender_call_duration_seconds_bucket{le="+Inf"}`:    4,
		`alert_domains_quota_wait_seconds_count{tenant=""}`:                 2,
		`alert_domains_quota_wait_seconds_sum{tenant=""}`:                   2,
		`alert_domains_quota_wait_seconds_bucket{tenant="",le="0.001"}`:     1,
	})
}

func TestConsumerInfo(t *testing.T) {
	m := metrics.New()
	m.ConsumerInfo(nil)
	m.ConsumerInfo(&jetstream.ConsumerInfo{NumPending: 120, NumAckPending: 16, NumRedelivered: 3, NumWaiting: 1})
	expect(t, scrape(t, m), map[string]float64{
		"alert_domains_consumer_pending_messages":     120,
		"alert_domains_consumer_ack_pending_messages": 16,
		"alert_domains_consumer_redelivered_messages": 3,
		"alert_domains_consumer_waiting_pulls":        1,
	})
}

// TestCacheAndIgnoredCounts: a stored result answered from the cache is a
// hit, one that cost a call a miss, one rejected before any call neither;
// every reason a result on a result subject is ignored is exported from 0
// and counted.
func TestCacheAndIgnoredCounts(t *testing.T) {
	m := metrics.New()
	before := scrape(t, m)
	for _, r := range message.Reasons {
		if v, ok := before[`alert_domains_results_ignored_total{reason="`+r+`"}`]; !ok || v != 0 {
			t.Errorf("results_ignored_total{reason=%q} not exported from 0", r)
		}
	}
	now := time.Now()
	for _, res := range []*message.Result{
		message.Success("a", nil, 0, true, now),
		message.Success("a", nil, 0, true, now),
		message.Success("b", nil, 1, false, now),
		message.Failure("", &message.Error{Kind: message.KindInvalidRequest}, 0, now),
	} {
		m.Middleware()(func(context.Context, *consumer.Delivery) consumer.Outcome {
			return consumer.Outcome{Action: consumer.Ack, Stored: true, Result: res}
		})(t.Context(), &consumer.Delivery{})
	}
	m.Ignored("request")
	expect(t, scrape(t, m), map[string]float64{
		"alert_domains_cache_hits_total":                        2,
		"alert_domains_cache_misses_total":                      1,
		`alert_domains_results_ignored_total{reason="request"}`: 1,
	})
}

// TestWatchQuota: the quota of each configured tenant, from 0 before any
// call, its use counted for the tenant whose client made the calls only;
// after a reload the added tenant's series are there and the removed
// one's are gone; a name no tenant has never becomes a label value.
func TestWatchQuota(t *testing.T) {
	m := metrics.New()
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "fabrikam": connector.Graph})
	limits := []connector.Limit{{Count: 100, Window: time.Minute}, {Count: 1500, Window: time.Hour}}
	quotas := map[string]*connector.Limiter{
		"contoso":   connector.NewLimiter(limits),
		"fabrikam":  connector.NewLimiter(limits),
		"northwind": connector.NewLimiter(limits[:1]),
		"evil":      connector.NewLimiter(limits),
	}
	if err := m.WatchQuota(func(tenant string) metrics.Quota {
		if q, ok := quotas[tenant]; ok {
			return q
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_quota_limit_calls{tenant="contoso",window="1m"}`:  100,
		`alert_domains_quota_limit_calls{tenant="contoso",window="1h"}`:  1500,
		`alert_domains_quota_limit_calls{tenant="fabrikam",window="1m"}`: 100,
		`alert_domains_quota_used_calls{tenant="contoso",window="1m"}`:   0,
		`alert_domains_quota_used_calls{tenant="contoso",window="1h"}`:   0,
		`alert_domains_quota_used_calls{tenant="fabrikam",window="1m"}`:  0,
		`alert_domains_quota_used_calls{tenant="fabrikam",window="1h"}`:  0,
	})
	for _, q := range []*connector.Limiter{quotas["contoso"], quotas["contoso"], quotas["contoso"], quotas["evil"]} {
		if ok, _ := q.Allow(); !ok {
			t.Fatal("limiter refused")
		}
	}
	got = scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_quota_used_calls{tenant="contoso",window="1m"}`:  3,
		`alert_domains_quota_used_calls{tenant="contoso",window="1h"}`:  3,
		`alert_domains_quota_used_calls{tenant="fabrikam",window="1m"}`: 0,
		`alert_domains_quota_used_calls{tenant="fabrikam",window="1h"}`: 0,
	})
	quotaTenants := func(got map[string]float64) map[string]bool {
		seen := map[string]bool{}
		for k := range got {
			if strings.HasPrefix(k, "alert_domains_quota_limit_calls{") || strings.HasPrefix(k, "alert_domains_quota_used_calls{") {
				_, rest, _ := strings.Cut(k, `tenant="`)
				name, _, _ := strings.Cut(rest, `"`)
				seen[name] = true
			}
		}
		return seen
	}
	if seen := quotaTenants(got); len(seen) != 2 || !seen["contoso"] || !seen["fabrikam"] {
		t.Errorf("quota series of tenants %v, want contoso and fabrikam", seen)
	}

	// A reload: fabrikam removed, northwind added.
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "northwind": connector.Graph})
	got = scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_quota_used_calls{tenant="contoso",window="1m"}`:    3,
		`alert_domains_quota_limit_calls{tenant="northwind",window="1m"}`: 100,
		`alert_domains_quota_used_calls{tenant="northwind",window="1m"}`:  0,
	})
	if seen := quotaTenants(got); len(seen) != 2 || !seen["contoso"] || !seen["northwind"] {
		t.Errorf("quota series after the reload of tenants %v, want contoso and northwind", seen)
	}
	if err := m.WatchQuota(nil); err == nil {
		t.Error("WatchQuota(nil) accepted")
	}
}

// TestWatchQuotaReadsASharedQuotaOnce: tenants of one app registration
// share its quota (QUOTA_SCOPE=shared): each shows its count, read once
// per scrape.
func TestWatchQuotaReadsASharedQuotaOnce(t *testing.T) {
	m := metrics.New()
	m.SetTenants(map[string]connector.API{"contoso": connector.Graph, "fabrikam": connector.Graph})
	q := &countingQuota{used: 7}
	if err := m.WatchQuota(func(string) metrics.Quota { return q }); err != nil {
		t.Fatal(err)
	}
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_quota_used_calls{tenant="contoso",window="1m"}`:  7,
		`alert_domains_quota_used_calls{tenant="fabrikam",window="1m"}`: 7,
	})
	if n := q.reads.Load(); n != 1 {
		t.Errorf("the shared quota was read %d times in one scrape, want 1", n)
	}
}

// countingQuota counts the reads of its use.
type countingQuota struct {
	used  int
	reads atomic.Int32
}

func (q *countingQuota) Limits() []connector.Limit {
	return []connector.Limit{{Count: 100, Window: time.Minute}}
}

func (q *countingQuota) Used(time.Duration) int {
	q.reads.Add(1)
	return q.used
}

// unreadableQuota is a quota whose use cannot be read now (a shared quota
// while NATS is down).
type unreadableQuota struct{}

func (unreadableQuota) Limits() []connector.Limit {
	return []connector.Limit{{Count: 100, Window: time.Minute}}
}
func (unreadableQuota) Used(time.Duration) int { return -1 }

func TestSharedQuotaCountersFromZero(t *testing.T) {
	m := metrics.New()
	q, err := m.SharedQuota()
	if err != nil {
		t.Fatal(err)
	}
	m.SetTenants(map[string]connector.API{"default": connector.Graph})
	if err := m.WatchQuota(func(string) metrics.Quota { return unreadableQuota{} }); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_quota_acquires_total{outcome="accepted"}`:        0,
		`alert_domains_quota_acquires_total{outcome="refused"}`:         0,
		`alert_domains_quota_acquires_total{outcome="unreachable"}`:     0,
		`alert_domains_quota_cooldowns_total{source="local"}`:           0,
		`alert_domains_quota_cooldowns_total{source="shared"}`:          0,
		`alert_domains_quota_limit_calls{tenant="default",window="1m"}`: 100,
	})
	if _, ok := got[`alert_domains_quota_used_calls{tenant="default",window="1m"}`]; ok {
		t.Error("a use that cannot be read is exported")
	}
	q.QuotaAcquire("refused")
	q.QuotaAcquire("accepted")
	q.QuotaCooldown("shared")
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_quota_acquires_total{outcome="accepted"}`: 1,
		`alert_domains_quota_acquires_total{outcome="refused"}`:  1,
		`alert_domains_quota_cooldowns_total{source="shared"}`:   1,
	})
}

func TestSafetyNetAnswered(t *testing.T) {
	m := metrics.New()
	m.SafetyNetAnswered(false)
	m.SafetyNetAnswered(true)
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_delivery_limit_advisories_total{result="stored"}`:  1,
		`alert_domains_delivery_limit_advisories_total{result="existed"}`: 1,
	})
}

func TestRuntimeCollectorsAndNames(t *testing.T) {
	m := metrics.New()
	m.Tenant(metrics.NoTenant, "").DefenderCall(200, time.Millisecond)
	got := scrape(t, m)
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if _, ok := got["process_start_time_seconds"]; !ok {
		t.Error("no process metrics")
	}
	for series := range got {
		name, _, _ := strings.Cut(series, "{")
		if !strings.HasPrefix(name, "alert_domains_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("series %s has neither the service's prefix nor a runtime one", series)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := map[time.Duration]string{
		time.Minute:                "1m",
		time.Hour:                  "1h",
		90 * time.Minute:           "1h30m",
		90 * time.Second:           "1m30s",
		24 * time.Hour:             "24h",
		1500 * time.Millisecond:    "1.5s",
		time.Hour + 30*time.Second: "1h0m30s",
	}
	for d, want := range tests {
		if got := metrics.ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
