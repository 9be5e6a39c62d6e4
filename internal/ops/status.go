package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	Open                  bool             // NATS asks no credentials: anyone reaching it may publish results
	Streams               []StreamStatus   // REQUEST_STREAM, RESULT_STREAM
	Consumers             []ConsumerStatus // the request consumer, the safety net's
	Missing               []string         // what the service needs and the server lacks
	Replicas              []Replica
	ReplicasIssue         string // why the replicas could not be asked
	Cache                 CacheStatus
	Failures              map[message.Kind]int // in the last FailureWindow
	Ignored               int                  // messages on result subjects the service did not write
	Quota                 QuotaStatus
	// Tenants are those of TENANTS_FILE (nil without it); ByTenant what
	// the results and requests say of each tenant ("": results that name
	// none).
	Tenants  []config.Tenant
	ByTenant map[string]*TenantStatus
	used     map[time.Duration]int // attempts of the results of each window of DEFENDER_RATE_LIMITS
	answered map[uint64]bool       // request sequences of the results read
}

// TenantStatus is what status knows of one tenant.
type TenantStatus struct {
	Results  int                  // in the last FailureWindow
	Failures map[message.Kind]int // in the last FailureWindow
	Stored   uint64               // requests stored on its request subject
	// Pending are the requests on its subject past the consumer's
	// acknowledgement floor without a result (-1: not known).
	Pending int64
	Quota   []QuotaRow // its app registration's use of each of its limits
	used    map[time.Duration]int
}

// QuotaStatus is the Defender quota and its use: with QUOTA_SCOPE=shared
// (and limits) as the quota streams count it, per app registration;
// otherwise the attempts of the results stored in each window.
type QuotaStatus struct {
	Limits     []connector.Limit // DEFENDER_RATE_LIMITS
	LimitsText string            // as written
	Shared     bool
	Issue      string        // why the shared quota could not be read
	Scanned    time.Duration // how far back results were read
	Rows       []QuotaRow
}

// QuotaRow is the use of one limit: of an app registration (Name) with
// the shared quota, else of the process quota.
type QuotaRow struct {
	Name     string
	Limit    connector.Limit
	Used     int
	Cooldown time.Time // the registration's calls are paused until then
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

// CacheStatus is the result cache: the success results stored in the last
// TTL (those answered from the cache too), which it answers from.
type CacheStatus struct {
	Stream  string // "": the cache is off
	TTL     time.Duration
	Issue   string // why Results is not known
	Results uint64
}

// StatusQuery says what ReadStatus reads beside the configuration.
type StatusQuery struct {
	Tenants []config.Tenant // of TENANTS_FILE; nil without it
	// QuotaLimits are the limits the shared quota's streams enforce
	// (quota.Enforced of every tenant's); none: the shared quota is not
	// read. QuotaLayout names the streams; the zero Layout is that of
	// DEFENDER_RATE_LIMITS alone.
	QuotaLimits  []connector.Limit
	QuotaLayout  quota.Layout
	Registration quota.Registration // the configuration's app registration
}

// Registration is the app registration whose quota tenant t spends.
func Registration(t *config.Tenant) quota.Registration {
	return quota.Registration{API: t.API, Cloud: t.Cloud, TenantID: t.Credential.TenantID, ClientID: t.Credential.ClientID}
}

const missingHint = "missing (start 'alert-domains serve' with PROVISION=true)"

// ReadStatus reads the state of cfg's deployment at now: streams,
// consumers, the replicas that answer, the cache, the quota and the recent
// results.
func ReadStatus(ctx context.Context, js jetstream.JetStream, cfg *config.Config, q StatusQuery, now time.Time) (*Status, error) {
	nc := js.Conn()
	st := &Status{Server: nc.ConnectedUrlRedacted(), ServerVersion: nc.ConnectedServerVersion(), Now: now, Open: !nc.AuthRequired(),
		Failures: map[message.Kind]int{}, Tenants: q.Tenants, ByTenant: map[string]*TenantStatus{}, used: map[time.Duration]int{}, answered: map[uint64]bool{},
		Quota: QuotaStatus{Limits: cfg.RateLimits, LimitsText: cfg.DefenderRateLimits}}
	for _, t := range q.Tenants {
		st.tenant(t.Name)
	}
	if err := st.readTopology(ctx, js, cfg); err != nil {
		return nil, err
	}
	var err error
	if st.Replicas, err = ReadReplicas(ctx, nc, cfg); err != nil {
		st.ReplicasIssue = err.Error()
	}
	st.Cache = readCache(ctx, js, cfg)
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
	if cfg.QuotaScope == quota.ScopeShared && len(q.QuotaLimits) > 0 {
		st.readSharedQuota(ctx, js, cfg, q)
	} else {
		st.processQuota()
	}
	return st, nil
}

func (st *Status) tenant(name string) *TenantStatus {
	ts, ok := st.ByTenant[name]
	if !ok {
		ts = &TenantStatus{Failures: map[message.Kind]int{}, used: map[time.Duration]int{}, Pending: -1}
		st.ByTenant[name] = ts
	}
	return ts
}

// readTopology reads the streams and consumers the service needs, naming
// those missing.
func (st *Status) readTopology(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	for _, name := range []string{cfg.RequestStream, cfg.ResultStream} {
		ss := StreamStatus{Name: name}
		s, err := js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			ss.Issue = missingHint
			st.Missing = append(st.Missing, "stream "+name)
		case err != nil:
			return fmt.Errorf("stream %s: %w", name, err)
		default:
			ss.Info = s.CachedInfo()
		}
		st.Streams = append(st.Streams, ss)
	}
	topo := broker.NewTopology(cfg)
	for _, c := range []ConsumerStatus{{Name: topo.Consumer.Durable, Role: "requests"}, {Name: topo.Advisories.Durable, Role: "safety net (max-deliveries advisories)"}} {
		cons, err := js.Consumer(ctx, cfg.RequestStream, c.Name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			c.Issue = "missing"
			st.Missing = append(st.Missing, "consumer "+c.Name)
		case err != nil:
			return fmt.Errorf("consumer %s: %w", c.Name, err)
		default:
			c.Info = cons.CachedInfo()
		}
		st.Consumers = append(st.Consumers, c)
	}
	return nil
}

// readCache counts the success results of the last CACHE_TTL with an
// ephemeral consumer that starts at that time and is deleted at once.
func readCache(ctx context.Context, js jetstream.JetStream, cfg *config.Config) CacheStatus {
	if cfg.CacheTTL <= 0 {
		return CacheStatus{}
	}
	cs := CacheStatus{Stream: cfg.ResultStream, TTL: cfg.CacheTTL}
	from := time.Now().Add(-cfg.CacheTTL)
	c, err := js.CreateConsumer(ctx, cfg.ResultStream, jetstream.ConsumerConfig{
		Description:    "alert-domains status: success results within CACHE_TTL",
		FilterSubjects: []string{cfg.SuccessSubject, broker.TenantSubject(cfg.SuccessSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 10 * time.Second, MemoryStorage: true, Replicas: 1,
	})
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		cs.Issue = "the stream is missing"
	case err != nil:
		cs.Issue = err.Error()
	default:
		info := c.CachedInfo()
		_ = js.DeleteConsumer(ctx, cfg.ResultStream, info.Name) // it goes by itself once inactive
		cs.Results = info.NumPending
	}
	return cs
}

// readResults reads the results of the longest window it needs (the last
// hour, or the longest quota window up to the results' retention): the
// failures of the last hour by kind, and the attempts of the results of
// each quota window.
func (st *Status) readResults(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	span := FailureWindow
	for _, limits := range append([][]connector.Limit{st.Quota.Limits}, tenantLimits(st.Tenants)...) {
		for _, l := range limits {
			span = max(span, min(l.Window, broker.ResultMaxAge))
		}
	}
	st.Quota.Scanned = span
	b, err := newBeliever(ctx, js, cfg)
	if err != nil {
		return err
	}
	err = consumer.Scan(ctx, js, cfg.ResultStream, resultsSince(cfg, st.Now.Add(-span)), func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r message.Result
		label, err := b.subjects.Label(cfg.RequestStream, msg.Subject(), msg.Headers())
		if err != nil || json.Unmarshal(msg.Data(), &r) != nil || r.RequestSequence != label.Seq {
			b.Ignored++
			return true, nil
		}
		if !label.Success {
			// A failure is shown by kind: believed only once checked
			// against its request.
			if res, gone, err := b.believe(ctx, msg.Subject(), msg.Headers(), msg.Data()); res == nil && !gone {
				return err == nil, err
			}
		}
		st.count(&r, label.Tenant, st.Now.Sub(meta.Timestamp))
		return true, nil
	})
	st.Ignored = b.Ignored
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	return nil
}

// count adds result r, stored age ago for tenant, to the failures and the
// quota use.
func (st *Status) count(r *message.Result, tenant string, age time.Duration) {
	st.answered[r.RequestSequence] = true
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
	for _, l := range st.Quota.Limits {
		if age <= l.Window {
			st.used[l.Window] += r.Attempts
		}
	}
	for _, l := range st.TenantLimits(tenant) {
		if age <= l.Window {
			ts.used[l.Window] += r.Attempts
		}
	}
}

// readTenantRequests counts the requests stored on each tenant's request
// subject, from the request stream's per-subject counts, and those of them
// without a result.
func (st *Status) readTenantRequests(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	s, err := js.Stream(ctx, cfg.RequestStream)
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = s.Info(ctx, jetstream.WithSubjectFilter(broker.TenantSubject(cfg.RequestSubject)))
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	floor := st.Consumers[0].Info
	for subject, n := range info.State.Subjects {
		name, _ := strings.CutPrefix(subject, cfg.RequestSubject+".")
		ts, ok := st.ByTenant[name] // only the tenants shown: any publisher can make up subjects
		if !ok || name == "" {
			continue
		}
		ts.Stored = n
		if floor != nil {
			ts.Pending = st.unansweredAfter(ctx, js, cfg.RequestStream, subject, floor.AckFloor.Stream)
		}
	}
	return nil
}

// unansweredAfter counts the requests on subject after sequence floor that
// have no result among those read; -1 when they cannot be read.
func (st *Status) unansweredAfter(ctx context.Context, js jetstream.JetStream, stream, subject string, floor uint64) int64 {
	var n int64
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: floor + 1, HeadersOnly: true}
	err := consumer.Scan(ctx, js, stream, occ, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !st.answered[meta.Sequence.Stream] {
			n++
		}
		return true, nil
	})
	if err != nil {
		return -1
	}
	return n
}

// processQuota fills the quota rows from the attempts of the results: the
// quota each process counts alone.
func (st *Status) processQuota() {
	for _, l := range st.Quota.Limits {
		st.Quota.Rows = append(st.Quota.Rows, QuotaRow{Limit: l, Used: st.used[l.Window]})
	}
	for name, ts := range st.ByTenant {
		for _, l := range st.TenantLimits(name) {
			ts.Quota = append(ts.Quota, QuotaRow{Limit: l, Used: ts.used[l.Window]})
		}
	}
}

// readSharedQuota fills the quota rows from the shared quota's streams:
// per app registration and window, the calls of every replica against its
// limit, and the cooldowns in force.
func (st *Status) readSharedQuota(ctx context.Context, js jetstream.JetStream, cfg *config.Config, q StatusQuery) {
	st.Quota.Shared = true
	layout := q.QuotaLayout
	if layout.Consumer() == "" {
		layout = quota.NewLayout(cfg.ConsumerName, cfg.RateLimits)
	}
	use, err := quota.ReadUse(ctx, js, layout, q.QuotaLimits)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st.Quota.Issue = missingHint
		return
	case err != nil:
		st.Quota.Issue = err.Error()
		return
	}
	cooldowns, _ := quota.ReadCooldowns(ctx, js, cfg.ConsumerName)
	own := q.Registration.Key()
	names := map[string]string{own: q.Registration.String()}
	keys := map[string]bool{}              // the registrations shown
	held := map[string][]connector.Limit{} // the limits each is held to
	keyOf := map[string]string{}           // the registration of each tenant shown
	for _, u := range use {
		for k := range u.ByKey {
			keys[k] = true
		}
	}
	if st.Tenants == nil {
		keys[own] = true
		for _, u := range use {
			held[own] = append(held[own], u.Limit)
		}
		for name := range st.ByTenant {
			if name != "" {
				keyOf[name] = own
			}
		}
	} else {
		delete(keys, own) // with the file, the registrations are the tenants'
	}
	for _, t := range st.Tenants {
		k := Registration(&t).Key()
		if prev, ok := names[k]; ok && k != own {
			names[k] = prev + ", " + t.Name
		} else {
			names[k] = "tenant " + t.Name
		}
		held[k] = append(held[k], quota.Enforced(t.RateLimits)...)
		keyOf[t.Name] = k
		if len(t.RateLimits) > 0 {
			keys[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		for _, u := range use {
			if used, ok := u.ByKey[k]; ok || slices.Contains(held[k], u.Limit) {
				st.Quota.Rows = append(st.Quota.Rows, QuotaRow{Name: cmp.Or(names[k], "key "+k), Limit: u.Limit, Used: used, Cooldown: cooldowns[k]})
			}
		}
	}
	for name, k := range keyOf {
		ts := st.tenant(name)
		for _, l := range quota.Enforced(st.TenantLimits(name)) {
			for _, u := range use {
				if u.Limit == l {
					ts.Quota = append(ts.Quota, QuotaRow{Limit: l, Used: u.ByKey[k]})
				}
			}
		}
	}
}

// PerTenant reports whether status has a line per tenant: with
// TENANTS_FILE, or when the results name more than one tenant.
func (st *Status) PerTenant() bool {
	named := len(st.ByTenant)
	if _, ok := st.ByTenant[""]; ok {
		named--
	}
	return st.Tenants != nil || named > 1
}

// TenantLimits are the quota limits of the tenant called name: those of
// TENANTS_FILE, or DEFENDER_RATE_LIMITS.
func (st *Status) TenantLimits(name string) []connector.Limit {
	for _, t := range st.Tenants {
		if t.Name == name {
			return t.RateLimits
		}
	}
	return st.Quota.Limits
}

func tenantLimits(list []config.Tenant) [][]connector.Limit {
	out := make([][]connector.Limit, len(list))
	for i, t := range list {
		out[i] = t.RateLimits
	}
	return out
}
