package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/quota"
)

// FailureWindow is the span of "recent failures".
const FailureWindow = time.Hour

// Status is the state of a deployment, as its NATS server holds it.
type Status struct {
	Server, ServerVersion string // the server asked (URL without credentials)
	Now                   time.Time
	Streams               []StreamStatus   // REQUEST_STREAM, RESULT_STREAM
	Consumers             []ConsumerStatus // the request consumer, the safety net's
	Cache                 CacheStatus
	Failures              map[message.Kind]int  // in the last FailureWindow
	Limits                []connector.Limit     // DEFENDER_RATE_LIMITS
	LimitsText            string                // DEFENDER_RATE_LIMITS as written
	Used                  map[time.Duration]int // attempts of the results of each quota window
	Scanned               time.Duration         // how far back results were read
	Missing               []string              // what the service needs and the server lacks
	Scope                 string                // QUOTA_SCOPE
	Shared                *SharedQuotaStatus    // QUOTA_SCOPE=shared
	Replicas              []Replica
	ReplicasIssue         string // why the replicas could not be asked
	// Tenants are those of TENANTS_FILE (nil without the file); ByTenant
	// what the results and requests say of each tenant ("": results that
	// name none).
	Tenants      []config.Tenant
	ByTenant     map[string]*TenantStatus
	TenantsIssue string          // why TENANTS_FILE could not be used (the caller reads it)
	Ignored      int             // messages on result subjects the service did not write
	Open         bool            // NATS asks no credentials: anyone reaching it may publish results
	answered     map[uint64]bool // request sequences of the results read
}

// TenantStatus is what status knows of one tenant.
type TenantStatus struct {
	Results  int                   // in the last hour
	Failures map[message.Kind]int  // in the last hour
	Used     map[time.Duration]int // attempts of the results of each quota window
	Stored   uint64                // requests stored on its request subject
	// Pending: requests on its request subject past the consumer's
	// acknowledgement floor without a result (-1: not known).
	Pending int64
}

func (st *Status) tenant(name string) *TenantStatus {
	ts, ok := st.ByTenant[name]
	if !ok {
		ts = &TenantStatus{Failures: map[message.Kind]int{}, Used: map[time.Duration]int{}, Pending: -1}
		st.ByTenant[name] = ts
	}
	return ts
}

// SharedQuotaStatus is the shared quota as the server counts it.
type SharedQuotaStatus struct {
	Own       quota.Registration // the configuration's app registration
	Use       []quota.Use        // one per stream (window and count)
	Cooldowns map[string]time.Time
	Issue     string // why Use is missing
}

// StreamStatus is one stream: its info, or why there is none.
type StreamStatus struct {
	Name  string
	Info  *jetstream.StreamInfo
	Issue string
}

// ConsumerStatus is one consumer: its info, or why there is none.
type ConsumerStatus struct {
	Name, Role string
	Info       *jetstream.ConsumerInfo
	Issue      string
}

// CacheStatus is the result cache: the success results it answers from.
type CacheStatus struct {
	Stream string // "": the cache is off
	TTL    time.Duration
	Issue  string // why Results is not known
	// Results are the success results stored in the last TTL (those
	// answered from the cache too).
	Results uint64
}

// StatusQuery says what ReadStatus reads beside the configuration.
type StatusQuery struct {
	Tenants []config.Tenant // of TENANTS_FILE; nil without the file
	// QuotaLimits are the limits the shared quota's streams enforce
	// (with tenants, every tenant's: quota.Enforced); none: the shared
	// quota is not read.
	QuotaLimits []connector.Limit
	// QuotaLayout names those streams; the zero Layout is that of
	// DEFENDER_RATE_LIMITS alone.
	QuotaLayout  quota.Layout
	Registration quota.Registration // the configuration's app registration
}

// ReadStatus reads the state of cfg's deployment at now: streams,
// consumers, the replicas that answer, the cache, the shared quota and the
// recent results.
func ReadStatus(ctx context.Context, js jetstream.JetStream, cfg *config.Config, q StatusQuery, now time.Time) (*Status, error) {
	topo := broker.NewTopology(cfg)
	nc := js.Conn()
	st := &Status{Server: nc.ConnectedUrlRedacted(), ServerVersion: nc.ConnectedServerVersion(),
		Now: now, Limits: cfg.RateLimits, LimitsText: cfg.DefenderRateLimits, Failures: map[message.Kind]int{}, Used: map[time.Duration]int{},
		Tenants: q.Tenants, ByTenant: map[string]*TenantStatus{}, Open: !nc.AuthRequired()}
	for _, t := range q.Tenants {
		st.tenant(t.Name)
	}
	for _, name := range []string{cfg.RequestStream, cfg.ResultStream} {
		ss := StreamStatus{Name: name}
		s, err := js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			ss.Issue = "missing (start 'alert-domains serve' with PROVISION=true)"
			st.Missing = append(st.Missing, "stream "+name)
		case err != nil:
			return nil, fmt.Errorf("stream %s: %w", name, err)
		default:
			ss.Info = s.CachedInfo()
		}
		st.Streams = append(st.Streams, ss)
	}
	for _, c := range []struct{ name, role string }{
		{topo.Consumer.Durable, "requests"},
		{topo.Advisories.Durable, "safety net (max-deliveries advisories)"},
	} {
		cs := ConsumerStatus{Name: c.name, Role: c.role}
		cons, err := js.Consumer(ctx, cfg.RequestStream, c.name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			cs.Issue = "missing"
			st.Missing = append(st.Missing, "consumer "+c.name)
		case err != nil:
			return nil, fmt.Errorf("consumer %s: %w", c.name, err)
		default:
			cs.Info = cons.CachedInfo()
		}
		st.Consumers = append(st.Consumers, cs)
	}
	replicas, err := ReadReplicas(ctx, nc, cfg)
	if err != nil {
		st.ReplicasIssue = err.Error()
	}
	st.Replicas = replicas
	st.Cache = readCache(ctx, js, cfg, topo)
	st.Scope = cfg.QuotaScope
	if cfg.QuotaScope == quota.ScopeShared && len(q.QuotaLimits) > 0 {
		layout := q.QuotaLayout
		if layout.Consumer() == "" {
			layout = quota.NewLayout(cfg.ConsumerName, cfg.RateLimits)
		}
		st.Shared = readSharedQuota(ctx, js, cfg, layout, q.Registration, q.QuotaLimits)
	}

	if st.Streams[1].Info != nil {
		if err := st.readResults(ctx, js, cfg); err != nil {
			return nil, err
		}
	}
	if st.Streams[0].Info != nil && st.PerTenant() {
		if err := st.readTenantRequests(ctx, js, cfg); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func readSharedQuota(ctx context.Context, js jetstream.JetStream, cfg *config.Config, layout quota.Layout, own quota.Registration, limits []connector.Limit) *SharedQuotaStatus {
	sq := &SharedQuotaStatus{Own: own}
	use, err := quota.ReadUse(ctx, js, layout, limits)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		sq.Issue = "missing (start 'alert-domains serve' with PROVISION=true)"
	case err != nil:
		sq.Issue = err.Error()
	default:
		sq.Use = use
	}
	sq.Cooldowns, _ = quota.ReadCooldowns(ctx, js, cfg.ConsumerName)
	return sq
}

// readTenantRequests counts the requests stored on each tenant's request
// subject, from the request stream's per-subject counts (one request to the
// server, however many messages).
func (st *Status) readTenantRequests(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	s, err := js.Stream(ctx, cfg.RequestStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(broker.TenantSubject(cfg.RequestSubject)))
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	// Only the tenants shown: any publisher can make up subjects.
	var floor uint64
	known := false
	if c := st.Consumers[0]; c.Info != nil {
		floor, known = c.Info.AckFloor.Stream, true
	}
	for subject, n := range info.State.Subjects {
		name, _ := strings.CutPrefix(subject, cfg.RequestSubject+".")
		ts, ok := st.ByTenant[name]
		if !ok || name == "" {
			continue
		}
		ts.Stored = n
		if known {
			ts.Pending = unansweredAfter(ctx, js, cfg.RequestStream, subject, floor, st.answered)
		}
	}
	return nil
}

// unansweredAfter counts the requests on subject after sequence floor that
// have no result among those read (answered); -1 when they cannot be read.
// The request stream is read headers only.
func unansweredAfter(ctx context.Context, js jetstream.JetStream, stream, subject string, floor uint64, answered map[uint64]bool) int64 {
	var n int64
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    floor + 1,
		HeadersOnly:    true,
	}
	err := consumer.Scan(ctx, js, stream, occ, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !answered[meta.Sequence.Stream] {
			n++
		}
		return true, nil
	})
	if err != nil {
		return -1
	}
	return n
}

// PerTenant reports whether status has a line per tenant: with
// TENANTS_FILE, or when the results name more than one tenant.
func (st *Status) PerTenant() bool {
	if st.Tenants != nil {
		return true
	}
	named := 0
	for name := range st.ByTenant {
		if name != "" {
			named++
		}
	}
	return named > 1
}

// readCache counts the success results of the last CACHE_TTL with an
// ephemeral consumer that starts at that time and is deleted at once.
func readCache(ctx context.Context, js jetstream.JetStream, cfg *config.Config, topo broker.Topology) CacheStatus {
	if cfg.CacheTTL <= 0 {
		return CacheStatus{}
	}
	cs := CacheStatus{Stream: topo.ResultStream.Name, TTL: cfg.CacheTTL}
	from := time.Now().Add(-cfg.CacheTTL)
	c, err := js.CreateConsumer(ctx, topo.ResultStream.Name, jetstream.ConsumerConfig{
		Description:       "alert-domains status: success results within CACHE_TTL",
		FilterSubjects:    []string{cfg.SuccessSubject, broker.TenantSubject(cfg.SuccessSubject)},
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		cs.Issue = "the stream is missing"
		return cs
	case err != nil:
		cs.Issue = err.Error()
		return cs
	}
	info := c.CachedInfo()
	_ = js.DeleteConsumer(ctx, topo.ResultStream.Name, info.Name)
	cs.Results = info.NumPending
	return cs
}

// readResults reads the results of the longest window it needs (the last
// hour, or the longest quota window up to the results' retention): the
// failures of the last hour by kind, and the attempts of the results of each
// quota window.
func (st *Status) readResults(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	span := FailureWindow
	for _, l := range st.Limits {
		span = max(span, min(l.Window, broker.ResultMaxAge))
	}
	for _, t := range st.Tenants {
		for _, l := range t.RateLimits {
			span = max(span, min(l.Window, broker.ResultMaxAge))
		}
	}
	st.Scanned = span
	from := st.Now.Add(-span)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.SuccessSubject, cfg.FailureSubject, broker.TenantSubject(cfg.SuccessSubject), broker.TenantSubject(cfg.FailureSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	}
	b, err := newBeliever(ctx, js, cfg)
	if err != nil {
		return err
	}
	if err := b.preload(ctx, from); err != nil {
		return fmt.Errorf("read requests: %w", err)
	}
	err = consumer.Scan(ctx, js, cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r message.Result
		label, err := b.subjects.Label(cfg.RequestStream, msg.Subject(), msg.Headers())
		if err != nil || json.Unmarshal(msg.Data(), &r) != nil || r.RequestSequence != label.Seq {
			b.Ignored++
			return true, nil
		}
		tenant := label.Tenant
		if res, gone, err := b.believe(ctx, msg.Subject(), msg.Headers(), msg.Data()); res == nil && !gone {
			return err == nil, err
		}
		if st.answered == nil {
			st.answered = map[uint64]bool{}
		}
		st.answered[r.RequestSequence] = true
		age := st.Now.Sub(meta.Timestamp)
		if tenant == "" && r.Tenant == config.DefaultTenant {
			tenant = r.Tenant // the plain subjects' tenant
		}
		ts := st.tenant(tenant)
		if age <= FailureWindow {
			ts.Results++
			if r.Error != nil {
				st.Failures[r.Error.Kind]++
				ts.Failures[r.Error.Kind]++
			}
		}
		for _, l := range st.Limits {
			if age <= l.Window {
				st.Used[l.Window] += r.Attempts
			}
		}
		for _, l := range st.TenantLimits(tenant) {
			if age <= l.Window {
				ts.Used[l.Window] += r.Attempts
			}
		}
		return true, nil
	})
	st.Ignored = b.Ignored
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	return nil
}

// TenantLimits are the quota limits of the tenant called name: those of
// TENANTS_FILE, or DEFENDER_RATE_LIMITS.
func (st *Status) TenantLimits(name string) []connector.Limit {
	for _, t := range st.Tenants {
		if t.Name == name {
			return t.RateLimits
		}
	}
	return st.Limits
}
