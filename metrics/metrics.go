// Package metrics exposes what the service does in the Prometheus text
// format, as alert_domains_*; no alert ID is ever a label.
package metrics

import (
	"context"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/message"
)

const namespace = "alert_domains"

// Metrics holds the service's collectors and their own registry.
type Metrics struct {
	reg *prometheus.Registry

	results    *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	attempts   prometheus.Histogram
	inFlight   prometheus.Gauge

	defenderCalls    *prometheus.CounterVec
	defenderDuration prometheus.Histogram
	quotaWait        *prometheus.HistogramVec

	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	ignored     *prometheus.CounterVec

	consumer [4]prometheus.Gauge // pending, ack pending, redelivered, waiting pulls

	deliveryLimit     *prometheus.CounterVec
	permissionMissing *prometheus.GaugeVec
	buildInfo         *prometheus.GaugeVec

	tenants tenantLabels // the values of the tenant label
}

// New returns the service's metrics, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		results:    counterVec("results_total", "Results stored in the result stream, by status (success, failure), failure kind (empty for a success), tenant (a name of the configured tenants; empty when the result names none of them) and api (graph or mde; empty when the request reached no tenant).", "status", "kind", "tenant", "api"),
		deliveries: counterVec("deliveries_total", "Request deliveries handled, by what happened to the request message (ack, retry, terminate, hand_back).", "action"),
		attempts: histogram("request_attempts", "Defender HTTP calls made by the delivery that produced each stored result (0: cached or rejected before any call).",
			0, 1, 2, 3, 5, 8, 13, 21),
		inFlight:      gauge("requests_in_flight", "Request deliveries being handled now."),
		defenderCalls: counterVec("defender_calls_total", "HTTP calls to Microsoft's API, by status code (\"error\" when no HTTP answer came: a network error or a time-out), tenant (a name of the configured tenants; empty for a client of none) and api (graph or mde).", "code", "tenant", "api"),
		defenderDuration: histogram("defender_call_duration_seconds", "Duration of one HTTP call to the Defender API.",
			0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
		quotaWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "quota_wait_seconds",
			Help:      "Time a Defender call waited for the client-side quota (DEFENDER_RATE_LIMITS), by tenant (a name of the configured tenants; empty for a client of none).",
			Buckets:   []float64{0.001, 0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600},
		}, []string{"tenant"}),
		cacheHits:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "cache_hits_total", Help: "Requests answered from the result cache, without a Defender call."}),
		cacheMisses:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "cache_misses_total", Help: "Requests the result cache could not answer, that went on to Microsoft."}),
		ignored:           counterVec("results_ignored_total", "Messages on a result subject that the service did not write and ignored, by reason: subject, message_id, status, tenant, body, request (it does not answer the stored request it names).", "reason"),
		deliveryLimit:     counterVec("delivery_limit_advisories_total", "Max-deliveries advisories answered by the safety net, by whether it stored a failure result (stored) or one existed already (existed).", "result"),
		permissionMissing: gaugeVec("permission_missing", "1 while the latest access token of a tenant lacks the application permission its API needs (roles claim), 0 otherwise: its requests fail as forbidden until an admin grants consent.", "tenant", "api", "permission"),
		buildInfo:         gaugeVec("build_info", "Always 1: the version, commit and Go version the binary was built from.", "version", "commit", "goversion"),
		consumer: [4]prometheus.Gauge{
			gauge("consumer_pending_messages", "Requests stored and not yet delivered to any replica (consumer num_pending)."),
			gauge("consumer_ack_pending_messages", "Requests delivered and not yet acknowledged (consumer num_ack_pending)."),
			gauge("consumer_redelivered_messages", "Requests delivered more than once and not yet acknowledged (consumer num_redelivered)."),
			gauge("consumer_waiting_pulls", "Pull requests waiting on the consumer (num_waiting)."),
		},
	}
	bi := buildinfo.Read()
	m.buildInfo.WithLabelValues(bi.Version, bi.Commit, bi.GoVersion).Set(1)
	m.exportFromZero()
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.results, m.deliveries, m.attempts, m.inFlight,
		m.defenderCalls, m.defenderDuration, m.quotaWait,
		m.cacheHits, m.cacheMisses, m.ignored,
		m.consumer[0], m.consumer[1], m.consumer[2], m.consumer[3],
		m.deliveryLimit, m.permissionMissing, m.buildInfo,
	)
	return m
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func histogram(name, help string, buckets ...float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
}

// Label values known in advance, exported from 0 so that increase() sees the first event.
var (
	failureKinds = []message.Kind{
		message.KindInvalidRequest, message.KindBadRequest, message.KindUnauthorized, message.KindForbidden,
		message.KindNotFound, message.KindThrottled, message.KindUnavailable, message.KindBadResponse,
		message.KindUnknownTenant,
	}
	actions = []consumer.Action{consumer.Ack, consumer.Retry, consumer.Terminate, consumer.HandBack}
	// defenderCodes are the answers DEFENDER-API documents, and "error".
	defenderCodes = []int{200, 400, 401, 403, 404, 429, 500, 502, 503, 504, 0}
)

func (m *Metrics) exportFromZero() {
	for _, api := range []connector.API{"", connector.Graph, connector.MDE} {
		m.exportTenant(NoTenant, api)
	}
	for _, a := range actions {
		m.deliveries.WithLabelValues(a.String())
	}
	for _, r := range message.Reasons {
		m.ignored.WithLabelValues(r)
	}
	for _, r := range []string{"stored", "existed"} {
		m.deliveryLimit.WithLabelValues(r)
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Middleware counts the deliveries, in flight and by action, and each newly
// stored result (not a duplicate) by status, kind and attempts.
func (m *Metrics) Middleware() consumer.Middleware {
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
			m.inFlight.Inc()
			defer m.inFlight.Dec()
			out := next(ctx, d)
			m.deliveries.WithLabelValues(out.Action.String()).Inc()
			if out.Stored && !out.Duplicate && out.Result != nil {
				res := out.Result
				m.withTenant(res.Tenant, connector.API(res.API), func(tenant string, api connector.API) {
					m.results.WithLabelValues(res.Status, string(res.Kind()), tenant, string(api)).Inc()
				})
				m.attempts.Observe(float64(out.Result.Attempts))
				switch {
				case out.Result.Cached != nil && *out.Result.Cached:
					m.cacheHits.Inc()
				case out.Result.Attempts > 0:
					m.cacheMisses.Inc()
				}
			}
			return out
		}
	}
}

// statusCode is the code label: the HTTP status, or "error".
func statusCode(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return strconv.Itoa(status)
}

// ConsumerInfo records the consumer's backlog from fresh consumer information.
func (m *Metrics) ConsumerInfo(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	for i, n := range []int{int(info.NumPending), info.NumAckPending, info.NumRedelivered, info.NumWaiting} {
		m.consumer[i].Set(float64(n))
	}
}

// SafetyNetAnswered records an advisory the safety net answered: its result
// stored by it, or before it (duplicate).
func (m *Metrics) SafetyNetAnswered(duplicate bool) {
	result := "stored"
	if duplicate {
		result = "existed"
	}
	m.deliveryLimit.WithLabelValues(result).Inc()
}

// Ignored counts a message on a result subject the service did not write.
func (m *Metrics) Ignored(reason string) { m.ignored.WithLabelValues(reason).Inc() }
