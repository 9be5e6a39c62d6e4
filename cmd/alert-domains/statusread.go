package main

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
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
)

// failureWindow is the span of "recent failures".
const failureWindow = time.Hour

const missingHint = "missing (start 'alert-domains serve' with PROVISION=true)"

// deployment is what the status screen shows of a deployment.
type deployment struct {
	cfg                   *config.Config
	server, serverVersion string // the server asked (URL without credentials)
	now                   time.Time
	open                  bool                      // NATS asks no credentials: anyone reaching it may publish results
	streams               []*jetstream.StreamInfo   // REQUEST_STREAM, RESULT_STREAM; nil: missing
	consumers             []*jetstream.ConsumerInfo // the request consumer, the safety net's; nil: missing
	missing               []string                  // what the service needs and the server lacks
	replicas              []ops.Replica
	replicasIssue         string
	cache                 string               // the cache line
	failures              map[message.Kind]int // in the last failureWindow
	ignored               int                  // messages on result subjects the service did not write
	tenants               []config.Tenant      // of TENANTS_FILE; nil without it
	byTenant              map[string]*tenantState
	used                  map[time.Duration]int // attempts of the results of each window of DEFENDER_RATE_LIMITS
	answered              map[uint64]bool       // request sequences of the results read
	scanned               time.Duration         // how far back results were read
	sharedQuota           bool                  // the rows count the shared quota (QUOTA_SCOPE=shared with limits)
	quotaIssue            string                // why the shared quota could not be read
	quota                 []quotaRow
}

// tenantState is what status knows of one tenant ("": results that name none).
type tenantState struct {
	results  int
	failures map[message.Kind]int
	stored   uint64 // requests stored on its request subject
	pending  int64  // of those past the consumer's acknowledgement floor, without a result; -1: not known
	used     map[time.Duration]int
	quota    []quotaRow
}

// quotaRow is the use of one limit: of an app registration (name), or of the process.
type quotaRow struct {
	name     string
	limit    connector.Limit
	used     int
	cooldown time.Time // the registration's calls are paused until then
}

// statusQuery says what readDeployment reads beside the configuration.
type statusQuery struct {
	tenants      []config.Tenant
	quotaLimits  []connector.Limit // none: the shared quota is not read
	quotaLayout  quota.Layout      // zero: that of DEFENDER_RATE_LIMITS
	registration quota.Registration
}

// readDeployment reads the state of cfg's deployment at now.
func readDeployment(ctx context.Context, js jetstream.JetStream, cfg *config.Config, q statusQuery, now time.Time) (*deployment, error) {
	nc := js.Conn()
	d := &deployment{cfg: cfg, server: nc.ConnectedUrlRedacted(), serverVersion: nc.ConnectedServerVersion(), now: now, open: !nc.AuthRequired(),
		failures: map[message.Kind]int{}, tenants: q.tenants, byTenant: map[string]*tenantState{}, used: map[time.Duration]int{}, answered: map[uint64]bool{}}
	for _, t := range q.tenants {
		d.tenant(t.Name)
	}
	if err := d.readTopology(ctx, js); err != nil {
		return nil, err
	}
	var err error
	if d.replicas, err = ops.ReadReplicas(ctx, nc, cfg); err != nil {
		d.replicasIssue = err.Error()
	}
	d.cache = readCache(ctx, js, cfg)
	if d.streams[1] != nil {
		if err := d.readResults(ctx, js); err != nil {
			return nil, err
		}
	}
	if d.streams[0] != nil && d.perTenant() {
		if err := d.readTenantRequests(ctx, js); err != nil {
			return nil, err
		}
	}
	if cfg.QuotaScope == quota.ScopeShared && len(q.quotaLimits) > 0 {
		d.readSharedQuota(ctx, js, q)
	} else {
		d.processQuota()
	}
	return d, nil
}

func (d *deployment) tenant(name string) *tenantState {
	ts, ok := d.byTenant[name]
	if !ok {
		ts = &tenantState{failures: map[message.Kind]int{}, used: map[time.Duration]int{}, pending: -1}
		d.byTenant[name] = ts
	}
	return ts
}

// readTopology reads the streams and consumers the service needs, naming those missing.
func (d *deployment) readTopology(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{d.cfg.RequestStream, d.cfg.ResultStream} {
		s, err := js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			d.streams, d.missing = append(d.streams, nil), append(d.missing, "stream "+name)
		case err != nil:
			return fmt.Errorf("stream %s: %w", name, err)
		default:
			d.streams = append(d.streams, s.CachedInfo())
		}
	}
	topo := broker.NewTopology(d.cfg)
	for _, name := range []string{topo.Consumer.Durable, topo.Advisories.Durable} {
		c, err := js.Consumer(ctx, d.cfg.RequestStream, name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			d.consumers, d.missing = append(d.consumers, nil), append(d.missing, "consumer "+name)
		case err != nil:
			return fmt.Errorf("consumer %s: %w", name, err)
		default:
			d.consumers = append(d.consumers, c.CachedInfo())
		}
	}
	return nil
}

// readCache counts the success results of the last CACHE_TTL with an ephemeral consumer.
func readCache(ctx context.Context, js jetstream.JetStream, cfg *config.Config) string {
	if cfg.CacheTTL <= 0 {
		return "off (CACHE_TTL=0)"
	}
	ttl := metrics.ShortDuration(cfg.CacheTTL)
	head := fmt.Sprintf("success results of stream %s, TTL %s: ", cfg.ResultStream, ttl)
	from := time.Now().Add(-cfg.CacheTTL)
	c, err := js.CreateConsumer(ctx, cfg.ResultStream, jetstream.ConsumerConfig{
		Description:    "alert-domains status: success results within CACHE_TTL",
		FilterSubjects: []string{cfg.SuccessSubject, broker.TenantSubject(cfg.SuccessSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 10 * time.Second, MemoryStorage: true, Replicas: 1,
	})
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return head + "the stream is missing"
	case err != nil:
		return head + err.Error()
	}
	info := c.CachedInfo()
	_ = js.DeleteConsumer(ctx, cfg.ResultStream, info.Name) // it goes by itself once inactive
	return head + fmt.Sprintf("%d stored in the last %s", info.NumPending, ttl)
}

// readResults reads the results of the last hour, or of the longest quota window up to the results' retention.
func (d *deployment) readResults(ctx context.Context, js jetstream.JetStream) error {
	d.scanned = failureWindow
	limits := slices.Clone(d.cfg.RateLimits)
	for _, t := range d.tenants {
		limits = append(limits, t.RateLimits...)
	}
	for _, l := range limits {
		d.scanned = max(d.scanned, min(l.Window, broker.ResultMaxAge))
	}
	b, err := ops.NewBeliever(ctx, js, d.cfg)
	if err != nil {
		return err
	}
	if err := b.Preload(ctx, d.now.Add(-d.scanned)); err != nil {
		return fmt.Errorf("read requests: %w", err)
	}
	err = consumer.Scan(ctx, js, d.cfg.ResultStream, ops.ResultsSince(d.cfg, d.now.Add(-d.scanned)), func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r message.Result
		label, err := b.Subjects.Label(d.cfg.RequestStream, msg.Subject(), msg.Headers())
		if err != nil || json.Unmarshal(msg.Data(), &r) != nil || r.RequestSequence != label.Seq {
			b.Ignored++
			return true, nil
		}
		if res, gone, err := b.Believe(ctx, msg.Subject(), msg.Headers(), msg.Data()); res == nil && !gone {
			return err == nil, err
		}
		d.count(&r, label.Tenant, d.now.Sub(meta.Timestamp))
		return true, nil
	})
	d.ignored = b.Ignored
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	return nil
}

// count adds result r, stored age ago, to the failures and the quota use.
func (d *deployment) count(r *message.Result, tenant string, age time.Duration) {
	d.answered[r.RequestSequence] = true
	if tenant == "" && r.Tenant == config.DefaultTenant {
		tenant = r.Tenant // the plain subjects' tenant
	}
	ts := d.tenant(tenant)
	if age <= failureWindow {
		ts.results++
		if r.Error != nil {
			d.failures[r.Error.Kind]++
			ts.failures[r.Error.Kind]++
		}
	}
	for _, l := range d.cfg.RateLimits {
		if age <= l.Window {
			d.used[l.Window] += r.Attempts
		}
	}
	for _, l := range d.tenantLimits(tenant) {
		if age <= l.Window {
			ts.used[l.Window] += r.Attempts
		}
	}
}

// readTenantRequests counts the requests on each tenant's subject, and those without a result.
func (d *deployment) readTenantRequests(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, d.cfg.RequestStream)
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = s.Info(ctx, jetstream.WithSubjectFilter(broker.TenantSubject(d.cfg.RequestSubject)))
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", d.cfg.RequestStream, err)
	}
	for subject, n := range info.State.Subjects {
		name, _ := strings.CutPrefix(subject, d.cfg.RequestSubject+".")
		ts, ok := d.byTenant[name] // only the tenants shown: any publisher can make up subjects
		if !ok || name == "" {
			continue
		}
		ts.stored = n
		if floor := d.consumers[0]; floor != nil {
			ts.pending = d.unansweredAfter(ctx, js, subject, floor.AckFloor.Stream)
		}
	}
	return nil
}

// unansweredAfter counts the requests on subject after floor without a result; -1: unknown.
func (d *deployment) unansweredAfter(ctx context.Context, js jetstream.JetStream, subject string, floor uint64) int64 {
	var n int64
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: floor + 1, HeadersOnly: true}
	err := consumer.Scan(ctx, js, d.cfg.RequestStream, occ, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !d.answered[meta.Sequence.Stream] {
			n++
		}
		return true, nil
	})
	if err != nil {
		return -1
	}
	return n
}

// processQuota fills the quota rows from the attempts of the results.
func (d *deployment) processQuota() {
	for _, l := range d.cfg.RateLimits {
		d.quota = append(d.quota, quotaRow{limit: l, used: d.used[l.Window]})
	}
	for name, ts := range d.byTenant {
		for _, l := range d.tenantLimits(name) {
			ts.quota = append(ts.quota, quotaRow{limit: l, used: ts.used[l.Window]})
		}
	}
}

// readSharedQuota fills the quota rows from the shared quota's streams, per app registration and window.
func (d *deployment) readSharedQuota(ctx context.Context, js jetstream.JetStream, q statusQuery) {
	d.sharedQuota = true
	layout := q.quotaLayout
	if layout.Consumer() == "" {
		layout = quota.NewLayout(d.cfg.ConsumerName, d.cfg.RateLimits)
	}
	use, err := quota.ReadUse(ctx, js, layout, q.quotaLimits)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		d.quotaIssue = missingHint
		return
	case err != nil:
		d.quotaIssue = err.Error()
		return
	}
	cooldowns, _ := quota.ReadCooldowns(ctx, js, d.cfg.ConsumerName)
	own := q.registration.Key()
	names := map[string]string{own: q.registration.String()}
	keys, held := map[string]bool{}, map[string][]connector.Limit{} // the registrations shown, and the limits each is held to
	keyOf := map[string]string{}                                    // the registration of each tenant shown
	for _, u := range use {
		for k := range u.ByKey {
			keys[k], held[k] = true, append(held[k], u.Limit)
		}
	}
	if d.tenants == nil {
		keys[own] = true
		for _, u := range use {
			held[own] = append(held[own], u.Limit)
		}
		for name := range d.byTenant {
			keyOf[name] = own
		}
		delete(keyOf, "")
	} else {
		delete(keys, own)
	}
	for _, t := range d.tenants {
		k := registration(&t).Key()
		if prev, ok := names[k]; ok && k != own {
			names[k] = prev + ", " + t.Name
		} else {
			names[k] = "tenant " + t.Name
		}
		keys[k] = keys[k] || len(t.RateLimits) > 0
		held[k], keyOf[t.Name] = append(held[k], quota.Enforced(t.RateLimits)...), k
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		for _, u := range use {
			if keys[k] && slices.Contains(held[k], u.Limit) {
				d.quota = append(d.quota, quotaRow{name: cmp.Or(names[k], "key "+k), limit: u.Limit, used: u.ByKey[k], cooldown: cooldowns[k]})
			}
		}
	}
	for name, k := range keyOf {
		for _, l := range quota.Enforced(d.tenantLimits(name)) {
			for _, u := range use {
				if u.Limit == l {
					d.tenant(name).quota = append(d.tenant(name).quota, quotaRow{limit: l, used: u.ByKey[k]})
				}
			}
		}
	}
}

// perTenant: with TENANTS_FILE, or results naming more than one tenant, a line per tenant.
func (d *deployment) perTenant() bool {
	named := len(d.byTenant)
	if _, ok := d.byTenant[""]; ok {
		named--
	}
	return d.tenants != nil || named > 1
}

// tenantLimits are the quota limits of the tenant called name.
func (d *deployment) tenantLimits(name string) []connector.Limit {
	for _, t := range d.tenants {
		if t.Name == name {
			return t.RateLimits
		}
	}
	return d.cfg.RateLimits
}
