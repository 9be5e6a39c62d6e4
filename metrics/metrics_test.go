package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/handlers"
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
	outcomes := []handlers.Outcome{
		{Action: handlers.Ack, Stored: true, Result: handlers.Success("a", []string{"x"}, 1, false, now)},
		{Action: handlers.Ack, Stored: true, Result: handlers.Success("a", []string{"x"}, 0, true, now)},
		{Action: handlers.Ack, Stored: true, Result: handlers.Failure("b", connector.ErrNotFound, 3, now)},
		// Stored by an earlier delivery: not counted again.
		{Action: handlers.Ack, Stored: true, Duplicate: true, Result: handlers.Failure("b", connector.ErrNotFound, 1, now)},
		{Action: handlers.Retry, Result: handlers.Failure("c", connector.ErrUnavailable, 2, now)},
		{Action: handlers.Terminate, Stored: true, Result: handlers.Failure("", connector.ErrInvalidRequest, 0, now)},
		{Action: handlers.HandBack},
	}
	i := 0
	h := m.Middleware()(func(ctx context.Context, d *handlers.Delivery) handlers.Outcome {
		inFlight = scrape(t, m)["alert_domains_requests_in_flight"]
		i++
		return outcomes[i-1]
	})
	for range outcomes {
		h(t.Context(), &handlers.Delivery{})
	}
	if inFlight != 1 {
		t.Errorf("requests in flight inside the handler = %v, want 1", inFlight)
	}
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_results_total{kind="",status="success",tenant=""}`:                2,
		`alert_domains_results_total{kind="not_found",status="failure",tenant=""}`:       1,
		`alert_domains_results_total{kind="invalid_request",status="failure",tenant=""}`: 1,
		`alert_domains_deliveries_total{action="ack"}`:                                   4,
		`alert_domains_deliveries_total{action="retry"}`:                                 1,
		`alert_domains_deliveries_total{action="terminate"}`:                             1,
		`alert_domains_deliveries_total{action="hand_back"}`:                             1,
		`alert_domains_request_attempts_count`:                                           4,
		`alert_domains_request_attempts_sum`:                                             4,
		`alert_domains_request_attempts_bucket{le="0"}`:                                  2,
		`alert_domains_request_attempts_bucket{le="1"}`:                                  3,
		`alert_domains_requests_in_flight`:                                               0,
	})
}

func TestObserverCountsDefenderCallsAndQuotaWaits(t *testing.T) {
	m := metrics.New()
	var o connector.Observer = m
	o.DefenderCall(200, 80*time.Millisecond)
	o.DefenderCall(200, 120*time.Millisecond)
	o.DefenderCall(429, 10*time.Millisecond)
	o.DefenderCall(0, 30*time.Second)
	o.QuotaWait(0)
	o.QuotaWait(2 * time.Second)
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_defender_calls_total{code="200",tenant=""}`:       2,
		`alert_domains_defender_calls_total{code="429",tenant=""}`:       1,
		`alert_domains_defender_calls_total{code="error",tenant=""}`:     1,
		`alert_domains_defender_call_duration_seconds_count`:             4,
		`alert_domains_defender_call_duration_seconds_bucket{le="0.1"}`:  2,
		`alert_domains_defender_call_duration_seconds_bucket{le="+Inf"}`: 4,
		`alert_domains_quota_wait_seconds_count`:                         2,
		`alert_domains_quota_wait_seconds_sum`:                           2,
		`alert_domains_quota_wait_seconds_bucket{le="0.001"}`:            1,
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

type fakeCache struct {
	entries map[string][]string
	err     error
}

func (c *fakeCache) Get(ctx context.Context, id string) ([]string, bool, error) {
	if c.err != nil {
		return nil, false, c.err
	}
	d, ok := c.entries[id]
	return d, ok, nil
}

func (c *fakeCache) Put(ctx context.Context, id string, d []string) error {
	if c.err != nil {
		return c.err
	}
	c.entries[id] = d
	return nil
}

func TestInstrumentCache(t *testing.T) {
	m := metrics.New()
	inner := &fakeCache{entries: map[string][]string{}}
	c := m.InstrumentCache(inner)
	ctx := t.Context()
	if _, ok, _ := c.Get(ctx, "a"); ok {
		t.Fatal("hit in an empty cache")
	}
	if err := c.Put(ctx, "a", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if d, ok, err := c.Get(ctx, "a"); !ok || err != nil || len(d) != 1 {
			t.Fatalf("Get = %v, %v, %v", d, ok, err)
		}
	}
	inner.err = errors.New("bucket gone")
	if _, _, err := c.Get(ctx, "a"); !errors.Is(err, inner.err) {
		t.Fatalf("Get error %v not passed on", err)
	}
	if err := c.Put(ctx, "a", nil); !errors.Is(err, inner.err) {
		t.Fatalf("Put error %v not passed on", err)
	}
	expect(t, scrape(t, m), map[string]float64{
		"alert_domains_cache_hits_total":             3,
		"alert_domains_cache_misses_total":           2,
		`alert_domains_cache_errors_total{op="get"}`: 1,
		`alert_domains_cache_errors_total{op="put"}`: 1,
	})
}

func TestWatchQuota(t *testing.T) {
	m := metrics.New()
	l := connector.NewLimiter([]connector.Limit{{Count: 100, Window: time.Minute}, {Count: 1500, Window: time.Hour}})
	if err := m.WatchQuota(l); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, _ := l.Allow(); !ok {
			t.Fatal("limiter refused")
		}
	}
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_quota_limit_calls{window="1m"}`: 100,
		`alert_domains_quota_limit_calls{window="1h"}`: 1500,
		`alert_domains_quota_used_calls{window="1m"}`:  3,
		`alert_domains_quota_used_calls{window="1h"}`:  3,
	})
	if err := m.WatchQuota(nil); err == nil {
		t.Error("WatchQuota(nil) accepted")
	}
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
	if err := m.WatchQuota(unreadableQuota{}); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m)
	expect(t, got, map[string]float64{
		`alert_domains_quota_acquires_total{outcome="accepted"}`:    0,
		`alert_domains_quota_acquires_total{outcome="refused"}`:     0,
		`alert_domains_quota_acquires_total{outcome="unreachable"}`: 0,
		`alert_domains_quota_cooldowns_total{source="local"}`:       0,
		`alert_domains_quota_cooldowns_total{source="shared"}`:      0,
		`alert_domains_quota_limit_calls{window="1m"}`:              100,
	})
	if _, ok := got[`alert_domains_quota_used_calls{window="1m"}`]; ok {
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

func TestSafetyNetResult(t *testing.T) {
	m := metrics.New()
	res := handlers.Failure("a", connector.ErrUnavailable, 0, time.Now())
	m.SafetyNetResult(res, false)
	m.SafetyNetResult(res, true)
	expect(t, scrape(t, m), map[string]float64{
		`alert_domains_results_total{kind="unavailable",status="failure",tenant=""}`: 1,
		`alert_domains_delivery_limit_advisories_total{result="stored"}`:             1,
		`alert_domains_delivery_limit_advisories_total{result="existed"}`:            1,
	})
}

func TestRuntimeCollectorsAndNames(t *testing.T) {
	m := metrics.New()
	m.DefenderCall(200, time.Millisecond)
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
