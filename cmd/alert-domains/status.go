package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
)

const statusSynopsis = `status

Prints, on one screen, what an operator needs during an incident: the
streams (messages, bytes, age of the oldest), the consumers (pending,
ack-pending, redelivered, waiting), the replicas running now (each answers
on NATS; bound to the consumer or not), the failures of the last hour by kind,
and the configured Defender quota with how much of it was used.

With TENANTS_FILE (or results of more than one tenant), a line per tenant:
its results and failures by kind in the last hour, the requests stored on its
request subject, and the quota its app registration used.`

// failureWindow is the span of "recent failures".
const failureWindow = time.Hour

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", statusSynopsis)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("status takes no arguments (got %q)", fs.Arg(0))
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	// The tenants file is read for the names and app registrations: a
	// file status cannot use (its secrets are not here) leaves the lines
	// per tenant out, not the rest of the screen.
	list, fromFile, err := loadTenants(cfg, e)
	tenantsIssue := ""
	if err != nil {
		tenantsIssue = err.Error()
	}
	if err != nil || !fromFile {
		list = nil
	}
	logger := newLogger(cfg, e)
	nc, err := broker.Connect(ctx, cfg, clientURL(cfg), "alert-domains status", logger)
	if err != nil {
		return configError(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := readStatus(ctx, js, cfg, list, time.Now())
	if err != nil {
		return err
	}
	st.tenantsIssue = cmp.Or(st.tenantsIssue, tenantsIssue)
	st.server = nc.ConnectedUrlRedacted()
	st.serverVersion = nc.ConnectedServerVersion()
	if err := st.print(e.stdout); err != nil {
		return err
	}
	if len(st.missing) > 0 {
		return fmt.Errorf("missing on %s: %s (start 'alert-domains serve' with PROVISION=true, or check %s)",
			st.server, strings.Join(st.missing, ", "), "REQUEST_STREAM, RESULT_STREAM, CONSUMER_NAME and NATS_URL")
	}
	return nil
}

// status is everything the status screen shows.
type status struct {
	server, serverVersion string
	now                   time.Time
	streams               []streamStatus
	consumers             []consumerStatus
	cache                 string
	failures              map[message.Kind]int
	limits                []connector.Limit
	limitsText            string
	used                  map[time.Duration]int
	scanned               time.Duration // how far back results were read
	missing               []string      // what the service needs and the server lacks
	scope                 string
	shared                *sharedQuotaStatus // QUOTA_SCOPE=shared
	replicas              []replicaPresence
	replicasIssue         string // why the replicas could not be asked
	// tenants are those of TENANTS_FILE (nil without the file); byTenant
	// what the results and requests say of each tenant ("": results that
	// name none).
	tenants      []config.Tenant
	byTenant     map[string]*tenantStatus
	answered     map[uint64]bool // request sequences of the results read
	tenantsIssue string          // why TENANTS_FILE could not be used
}

// tenantStatus is one tenant's line.
type tenantStatus struct {
	results  int                   // in the last hour
	failures map[message.Kind]int  // in the last hour
	used     map[time.Duration]int // attempts of the results of each quota window
	stored   uint64                // requests stored on its request subject
	// pending: requests on its request subject past the consumer's
	// acknowledgement floor without a result (-1: not known).
	pending int64
}

func (st *status) tenant(name string) *tenantStatus {
	ts, ok := st.byTenant[name]
	if !ok {
		ts = &tenantStatus{failures: map[message.Kind]int{}, used: map[time.Duration]int{}, pending: -1}
		st.byTenant[name] = ts
	}
	return ts
}

// sharedQuotaStatus is the shared quota as the server counts it.
type sharedQuotaStatus struct {
	own       quota.Registration
	use       []quota.Use
	cooldowns map[string]time.Time
	issue     string // why use is missing
}

type streamStatus struct {
	name  string
	info  *jetstream.StreamInfo
	issue string // why info is missing
}

type consumerStatus struct {
	name, role string
	info       *jetstream.ConsumerInfo
	issue      string
}

func readStatus(ctx context.Context, js jetstream.JetStream, cfg *config.Config, list []config.Tenant, now time.Time) (*status, error) {
	topo := broker.NewTopology(cfg)
	st := &status{now: now, limits: cfg.RateLimits, limitsText: cfg.DefenderRateLimits, failures: map[message.Kind]int{}, used: map[time.Duration]int{},
		tenants: list, byTenant: map[string]*tenantStatus{}}
	for _, t := range list {
		st.tenant(t.Name)
	}
	for _, name := range []string{cfg.RequestStream, cfg.ResultStream} {
		ss := streamStatus{name: name}
		s, err := js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			ss.issue = "missing (start 'alert-domains serve' with PROVISION=true)"
			st.missing = append(st.missing, "stream "+name)
		case err != nil:
			return nil, fmt.Errorf("stream %s: %w", name, err)
		default:
			ss.info = s.CachedInfo()
		}
		st.streams = append(st.streams, ss)
	}
	for _, c := range []struct{ name, role string }{
		{topo.Consumer.Durable, "requests"},
		{topo.Advisories.Durable, "safety net (max-deliveries advisories)"},
	} {
		cs := consumerStatus{name: c.name, role: c.role}
		cons, err := js.Consumer(ctx, cfg.RequestStream, c.name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			cs.issue = "missing"
			st.missing = append(st.missing, "consumer "+c.name)
		case err != nil:
			return nil, fmt.Errorf("consumer %s: %w", c.name, err)
		default:
			cs.info = cons.CachedInfo()
		}
		st.consumers = append(st.consumers, cs)
	}
	replicas, err := readReplicas(ctx, js.Conn(), cfg)
	if err != nil {
		st.replicasIssue = err.Error()
	}
	st.replicas = replicas
	st.cache = cacheStatus(ctx, js, topo)
	if topo.Cache != nil && strings.HasSuffix(st.cache, ": missing") {
		st.missing = append(st.missing, "key-value bucket "+topo.Cache.Bucket)
	}
	st.scope = cfg.QuotaScope
	limits := cfg.RateLimits
	if list != nil && cfg.QuotaScope == quota.ScopeShared {
		// What the quota streams enforce for the tenants of the file.
		if limits, err = sharedLimits(cfg, list); err != nil {
			st.tenantsIssue = err.Error()
			limits = nil
		}
	}
	if cfg.QuotaScope == quota.ScopeShared && len(limits) > 0 {
		st.shared = readSharedQuota(ctx, js, cfg, limits)
	}

	if st.streams[1].info != nil {
		if err := st.readResults(ctx, js, cfg); err != nil {
			return nil, err
		}
	}
	if st.streams[0].info != nil && st.perTenant() {
		if err := st.readTenantRequests(ctx, js, cfg); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func readSharedQuota(ctx context.Context, js jetstream.JetStream, cfg *config.Config, limits []connector.Limit) *sharedQuotaStatus {
	sq := &sharedQuotaStatus{own: registration(cfg)}
	use, err := quota.ReadUse(ctx, js, cfg.ConsumerName, limits)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		sq.issue = "missing (start 'alert-domains serve' with PROVISION=true)"
	case err != nil:
		sq.issue = err.Error()
	default:
		sq.use = use
	}
	sq.cooldowns, _ = quota.ReadCooldowns(ctx, js, cfg.ConsumerName)
	return sq
}

// readTenantRequests counts the requests stored on each tenant's request
// subject, from the request stream's per-subject counts (one request to the
// server, however many messages).
func (st *status) readTenantRequests(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
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
	if c := st.consumers[0]; c.info != nil {
		floor, known = c.info.AckFloor.Stream, true
	}
	for subject, n := range info.State.Subjects {
		name, _ := strings.CutPrefix(subject, cfg.RequestSubject+".")
		ts, ok := st.byTenant[name]
		if !ok || name == "" {
			continue
		}
		ts.stored = n
		if known {
			ts.pending = unansweredAfter(ctx, js, cfg.RequestStream, subject, floor, st.answered)
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
	err := scanStream(ctx, js, stream, occ, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
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

// perTenant reports whether status has a line per tenant: with
// TENANTS_FILE, or when the results name more than one tenant.
func (st *status) perTenant() bool {
	if st.tenants != nil {
		return true
	}
	named := 0
	for name := range st.byTenant {
		if name != "" {
			named++
		}
	}
	return named > 1
}

func cacheStatus(ctx context.Context, js jetstream.JetStream, topo broker.Topology) string {
	if topo.Cache == nil {
		return "off (CACHE_TTL=0)"
	}
	kv, err := js.KeyValue(ctx, topo.Cache.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Sprintf("bucket %s: missing", topo.Cache.Bucket)
	}
	if err != nil {
		return fmt.Sprintf("bucket %s: %v", topo.Cache.Bucket, err)
	}
	s, err := kv.Status(ctx)
	if err != nil {
		return fmt.Sprintf("bucket %s: %v", topo.Cache.Bucket, err)
	}
	return fmt.Sprintf("bucket %s: %d alerts cached, TTL %s, %s", s.Bucket(), s.Values(), metrics.ShortDuration(s.TTL()), byteSize(s.Bytes()))
}

// readResults reads the results of the longest window it needs (the last
// hour, or the longest quota window up to the results' retention): the
// failures of the last hour by kind, and the attempts of the results of each
// quota window.
func (st *status) readResults(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	span := failureWindow
	for _, l := range st.limits {
		span = max(span, min(l.Window, broker.ResultMaxAge))
	}
	for _, t := range st.tenants {
		for _, l := range t.RateLimits {
			span = max(span, min(l.Window, broker.ResultMaxAge))
		}
	}
	st.scanned = span
	from := st.now.Add(-span)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.SuccessSubject, cfg.FailureSubject, broker.TenantSubject(cfg.SuccessSubject), broker.TenantSubject(cfg.FailureSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	}
	err := scanStream(ctx, js, cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r message.Result
		if json.Unmarshal(msg.Data(), &r) != nil {
			return true, nil
		}
		if st.answered == nil {
			st.answered = map[uint64]bool{}
		}
		st.answered[r.RequestSequence] = true
		age := st.now.Sub(meta.Timestamp)
		ts := st.tenant(r.Tenant)
		if age <= failureWindow {
			ts.results++
			if r.Error != nil {
				st.failures[r.Error.Kind]++
				ts.failures[r.Error.Kind]++
			}
		}
		for _, l := range st.limits {
			if age <= l.Window {
				st.used[l.Window] += r.Attempts
			}
		}
		for _, l := range st.tenantLimits(r.Tenant) {
			if age <= l.Window {
				ts.used[l.Window] += r.Attempts
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	return nil
}

func (st *status) print(out io.Writer) error {
	// Each section is a table of its own.
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	section := func() {
		w.Flush()
		fmt.Fprintln(out)
	}
	server := st.server
	if st.serverVersion != "" {
		server += " (nats-server " + st.serverVersion + ")"
	}
	fmt.Fprintf(w, "NATS\t%s\n", server)
	fmt.Fprintf(w, "TIME\t%s\n", st.now.UTC().Format(time.RFC3339))
	section()

	fmt.Fprintln(w, "STREAM\tMESSAGES\tBYTES\tOLDEST\tNEWEST")
	for _, s := range st.streams {
		if s.info == nil {
			fmt.Fprintf(w, "%s\t%s\n", s.name, s.issue)
			continue
		}
		state := s.info.State
		oldest, newest := "-", "-"
		if state.Msgs > 0 {
			oldest, newest = ago(st.now, state.FirstTime), ago(st.now, state.LastTime)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.name, state.Msgs, byteSize(state.Bytes), oldest, newest)
	}
	section()

	fmt.Fprintln(w, "CONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tWAITING\tLAST DELIVERY\tROLE")
	for _, c := range st.consumers {
		if c.info == nil {
			fmt.Fprintf(w, "%s\t%s\t\t\t\t\t%s\n", c.name, c.issue, c.role)
			continue
		}
		i := c.info
		last := "never"
		if i.Delivered.Last != nil {
			last = ago(st.now, *i.Delivered.Last)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", c.name, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, last, c.role)
	}
	section()

	waiting := -1
	if c := st.consumers[0]; c.info != nil {
		waiting = c.info.NumWaiting
	}
	printReplicas(w, st.now, st.consumers[0].name, st.replicas, st.replicasIssue, waiting)
	section()

	fmt.Fprintf(w, "CACHE\t%s\n", st.cache)
	section()

	if len(st.failures) == 0 {
		fmt.Fprintln(w, "FAILURES IN THE LAST HOUR: none")
	} else {
		kinds := make([]message.Kind, 0, len(st.failures))
		total := 0
		for k, n := range st.failures {
			kinds = append(kinds, k)
			total += n
		}
		slices.SortFunc(kinds, func(a, b message.Kind) int {
			return cmp.Or(cmp.Compare(st.failures[b], st.failures[a]), cmp.Compare(a, b))
		})
		fmt.Fprintf(w, "FAILURES IN THE LAST HOUR: %d\n", total)
		fmt.Fprintln(w, "  KIND\tCOUNT")
		for _, k := range kinds {
			fmt.Fprintf(w, "  %s\t%d\n", k, st.failures[k])
		}
	}
	section()

	if st.tenantsIssue != "" {
		fmt.Fprintf(w, "TENANTS: TENANTS_FILE not used: %s\n", st.tenantsIssue)
		section()
	}
	if st.perTenant() {
		st.printTenants(w)
		section()
	}

	if st.shared != nil {
		st.printShared(w)
		return w.Flush()
	}
	fmt.Fprintf(w, "DEFENDER QUOTA: %s\n", quotaText(st.limitsText, st.limits))
	if len(st.limits) > 0 {
		fmt.Fprintln(w, "  WINDOW\tLIMIT\tUSED")
		for _, l := range st.limits {
			used := st.used[l.Window]
			fmt.Fprintf(w, "  %s\t%d\t%d (%d%%)", metrics.ShortDuration(l.Window), l.Count, used, used*100/l.Count)
			if l.Window > st.scanned {
				fmt.Fprintf(w, "\t(results are kept %s: counted over that)", metrics.ShortDuration(st.scanned))
			}
			fmt.Fprintln(w)
		}
		w.Flush()
		fmt.Fprintln(out, "\nUSED is the sum of the attempts (Defender calls) of the results stored in the")
		fmt.Fprintln(out, "window, from every replica; calls of deliveries that ended without a result")
		fmt.Fprintln(out, "are not counted. The quota applies to each process (QUOTA_SCOPE=process):")
		fmt.Fprintln(out, "replicas divide the tenant's quota between them.")
	}
	return w.Flush()
}

// printShared prints the shared quota: per app registration and window,
// the calls of every replica against the limit, and cooldowns in force.
func (st *status) printShared(w *tabwriter.Writer) {
	sq := st.shared
	fmt.Fprintf(w, "DEFENDER QUOTA: %s, shared by every replica (QUOTA_SCOPE=shared)\n", strings.TrimSuffix(quotaText(st.limitsText, st.limits), " per process (DEFENDER_RATE_LIMITS)"))
	if sq.issue != "" {
		fmt.Fprintf(w, "  quota state %s\n", sq.issue)
		return
	}
	ownKey := sq.own.Key()
	keys := map[string]bool{ownKey: true}
	for _, u := range sq.use {
		for k := range u.ByKey {
			keys[k] = true
		}
	}
	if st.tenants != nil {
		// With the file, the registrations are the tenants'.
		delete(keys, ownKey)
		for _, t := range st.tenants {
			if len(t.RateLimits) > 0 {
				keys[tenantRegistration(&t).Key()] = true
			}
		}
	}
	names := map[string]string{ownKey: sq.own.String()}
	for _, t := range st.tenants {
		k := tenantRegistration(&t).Key()
		if prev, ok := names[k]; ok && k != ownKey {
			names[k] = prev + ", " + t.Name
		} else {
			names[k] = "tenant " + t.Name
		}
	}
	sorted := slices.Sorted(maps.Keys(keys))
	fmt.Fprintln(w, "  APP REGISTRATION\tWINDOW\tLIMIT\tUSED (ALL REPLICAS)\tCOOLDOWN")
	for _, k := range sorted {
		name := cmp.Or(names[k], "key "+k)
		cool := "-"
		if until, ok := sq.cooldowns[k]; ok && until.After(st.now) {
			cool = "until " + until.UTC().Format("15:04:05.000") + " (" + metrics.ShortDuration(until.Sub(st.now).Round(time.Millisecond)) + " left)"
		}
		for _, u := range sq.use {
			used := u.ByKey[k]
			fmt.Fprintf(w, "  %s\t%s\t%d\t%d (%d%%)\t%s\n", name, metrics.ShortDuration(u.Limit.Window), u.Limit.Count, used, used*100/u.Limit.Count, cool)
		}
	}
	w.Flush()
	fmt.Fprintln(w, "\nUSED counts the calls of every replica that hold a slot: running, or ended")
	fmt.Fprintln(w, "less than a window ago, as the NATS server counts them.")
}

// tenantLimits are the quota limits of the tenant called name: those of
// TENANTS_FILE, or DEFENDER_RATE_LIMITS.
func (st *status) tenantLimits(name string) []connector.Limit {
	for _, t := range st.tenants {
		if t.Name == name {
			return t.RateLimits
		}
	}
	return st.limits
}

// printTenants prints a line per tenant: those of the file, then any other
// the results name, then the results that name none.
func (st *status) printTenants(w *tabwriter.Writer) {
	var names []string
	configured := map[string]bool{}
	for _, t := range st.tenants {
		names = append(names, t.Name)
		configured[t.Name] = true
	}
	for _, n := range slices.Sorted(maps.Keys(st.byTenant)) {
		if !configured[n] && n != "" {
			names = append(names, n)
		}
	}
	if _, ok := st.byTenant[""]; ok {
		names = append(names, "")
	}
	if st.tenants != nil {
		fmt.Fprintf(w, "TENANTS: %d configured\n", len(st.tenants))
	} else {
		fmt.Fprintln(w, "TENANTS named by the results")
	}
	fmt.Fprintln(w, "  TENANT\tRESULTS (1H)\tFAILURES (1H)\tREQUESTS STORED\tPENDING\tQUOTA USED")
	for _, n := range names {
		ts := st.byTenant[n]
		label := n
		switch {
		case n == "":
			label = "(none named)"
		case st.tenants != nil && !configured[n]:
			label = n + " (not configured)"
		}
		stored, pending := "-", "-"
		if n != "" {
			stored = strconv.FormatUint(ts.stored, 10)
			if ts.pending >= 0 {
				pending = strconv.FormatInt(ts.pending, 10)
			} else if ts.stored == 0 {
				pending = "0"
			}
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\n", label, ts.results, failureText(ts.failures), stored, pending, st.tenantQuota(n, ts))
	}
	w.Flush()
	fmt.Fprintln(w, "\nREQUESTS STORED counts the requests kept on the tenant's request subject")
	fmt.Fprintln(w, "(REQUEST_SUBJECT.<name>), answered or not; PENDING those of them without a")
	fmt.Fprintln(w, "result yet (waiting for their quota or a worker, or in hand).")
}

// failureText is failures by kind, the most frequent first: "3 (2
// unavailable, 1 not_found)".
func failureText(failures map[message.Kind]int) string {
	total := 0
	for _, n := range failures {
		total += n
	}
	if total == 0 {
		return "0"
	}
	kinds := slices.SortedFunc(maps.Keys(failures), func(a, b message.Kind) int {
		return cmp.Or(cmp.Compare(failures[b], failures[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", failures[k], k)
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// tenantQuota is the quota the tenant's app registration used in each
// window: as the shared quota counts it, or (QUOTA_SCOPE=process) the
// attempts of the tenant's results.
func (st *status) tenantQuota(name string, ts *tenantStatus) string {
	var parts []string
	if sq := st.shared; sq != nil {
		var key string
		for _, t := range st.tenants {
			if t.Name == name {
				key = tenantRegistration(&t).Key()
			}
		}
		if st.tenants == nil && name != "" {
			key = sq.own.Key()
		}
		if key == "" || sq.issue != "" {
			return "-"
		}
		for _, u := range sq.use {
			parts = append(parts, fmt.Sprintf("%d/%d per %s", u.ByKey[key], u.Limit.Count, metrics.ShortDuration(u.Limit.Window)))
		}
	} else {
		for _, l := range st.tenantLimits(name) {
			parts = append(parts, fmt.Sprintf("%d/%d per %s", ts.used[l.Window], l.Count, metrics.ShortDuration(l.Window)))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func quotaText(text string, limits []connector.Limit) string {
	if len(limits) == 0 {
		return "none (DEFENDER_RATE_LIMITS=" + cmp.Or(text, "none") + ")"
	}
	parts := make([]string, len(limits))
	for i, l := range limits {
		parts[i] = fmt.Sprintf("%d/%s", l.Count, metrics.ShortDuration(l.Window))
	}
	return strings.Join(parts, ", ") + " per process (DEFENDER_RATE_LIMITS)"
}

// ago says how long before now t was, to the second.
func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < time.Second {
		return "just now"
	}
	if d >= 48*time.Hour {
		days, hours := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
		if hours == 0 {
			return fmt.Sprintf("%dd ago", days)
		}
		return fmt.Sprintf("%dd%dh ago", days, hours)
	}
	return metrics.ShortDuration(d) + " ago"
}

func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
