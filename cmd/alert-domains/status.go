package main

import (
	"cmp"
	"context"
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
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/tenants"
)

const statusUsage = `status

Prints, on one screen, what an operator needs during an incident: the
streams (messages, bytes, age of the oldest), the consumers (pending,
ack-pending, redelivered, waiting), the replicas running now (each answers
on NATS; bound to the consumer or not), the failures of the last hour by kind,
the Microsoft API of each tenant with what its access token says of the
permission that API needs, and the configured quota with how much of it was
used. Exit status 1 naming what is missing when a stream or consumer does
not exist.

With TENANTS_FILE (or results of more than one tenant), a line per tenant:
its results and failures by kind in the last hour, the requests stored on its
request subject, and the quota its app registration used.`

func runStatus(ctx context.Context, e *env, args []string) error {
	if err := parse(e.flags("status"), args, true); err != nil {
		return err
	}
	cfg, js, closeConn, err := connectClient(ctx, e, "status")
	if err != nil {
		return err
	}
	defer closeConn()
	// A tenants file status cannot use leaves out the lines per tenant only.
	list, fromFile, err := loadTenants(cfg, e)
	tenantsIssue := ""
	if err != nil && fromFile {
		tenantsIssue = err.Error()
	}
	apis := statusAPIs(ctx, cfg, list)
	if err != nil || !fromFile {
		list = nil
	}
	d := &deployment{cfg: cfg, tenants: list, quotaLimits: cfg.RateLimits, quotaLayout: quota.NewLayout(cfg.ConsumerName, cfg.RateLimits),
		own: quota.Registration{API: cfg.API, Cloud: cfg.DefenderCloud, TenantID: cfg.AzureTenantID, ClientID: cfg.AzureClientID}}
	if list != nil && cfg.QuotaScope == quota.ScopeShared {
		if d.quotaLayout, d.quotaLimits, err = sharedQuota(cfg, list); err != nil {
			tenantsIssue, d.quotaLimits = err.Error(), nil
		}
	}
	if err := d.read(ctx, js, time.Now()); err != nil {
		return err
	}
	if err := printStatus(e.stdout, d, <-apis, tenantsIssue); err != nil {
		return err
	}
	if len(d.missing) > 0 {
		return fmt.Errorf("missing on %s: %s (start 'alert-domains serve' with PROVISION=true, or check REQUEST_STREAM, RESULT_STREAM, CONSUMER_NAME and NATS_URL)",
			d.server, strings.Join(d.missing, ", "))
	}
	return nil
}

// printStatus writes the status screen: a table per section, each after a
// blank line, which also ends the columns of the one before.
func printStatus(out io.Writer, d *deployment, apis []permissionCheck, tenantsIssue string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	server := d.server
	if d.serverVersion != "" {
		server += " (nats-server " + d.serverVersion + ")"
	}
	fmt.Fprintf(w, "NATS\t%s\nTIME\t%s\n", server, d.now.UTC().Format(time.RFC3339))
	if d.open {
		fmt.Fprintf(w, "WARNING\tNATS asks no credentials: anyone who reaches it can publish results as the service (see deploy/nats/permissions.conf)\n")
	}
	if d.ignored > 0 {
		fmt.Fprintf(w, "WARNING\t%d messages on result subjects were not written by the service for a stored request and are ignored\n", d.ignored)
	}
	d.printTopology(w)
	d.printReplicas(w)
	fmt.Fprintf(w, "\nCACHE\t%s\n\n", d.cache)
	if total, kinds := byCount(d.failures); total == 0 {
		fmt.Fprintln(w, "FAILURES IN THE LAST HOUR: none")
	} else {
		fmt.Fprintf(w, "FAILURES IN THE LAST HOUR: %d\n  KIND\tCOUNT\n", total)
		for _, k := range kinds {
			fmt.Fprintf(w, "  %s\t%d\n", message.Printable(string(k), 40), d.failures[k])
		}
	}
	printAPIs(w, apis)
	if tenantsIssue != "" {
		fmt.Fprintf(w, "\nTENANTS: TENANTS_FILE not used: %s\n", tenantsIssue)
	}
	if d.perTenant() {
		d.printTenants(w)
	}
	d.printQuota(w)
	return w.Flush()
}

func (d *deployment) printTopology(w io.Writer) {
	fmt.Fprintln(w, "\nSTREAM\tMESSAGES\tBYTES\tOLDEST\tNEWEST")
	for i, name := range []string{d.cfg.RequestStream, d.cfg.ResultStream} {
		s := d.streams[i]
		if s == nil {
			fmt.Fprintf(w, "%s\t%s\n", name, missingHint)
			continue
		}
		oldest, newest := "-", "-"
		if s.State.Msgs > 0 {
			oldest, newest = ago(d.now, s.State.FirstTime), ago(d.now, s.State.LastTime)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", name, s.State.Msgs, byteSize(s.State.Bytes), oldest, newest)
	}
	fmt.Fprintln(w, "\nCONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tWAITING\tLAST DELIVERY\tROLE")
	topo := broker.NewTopology(d.cfg)
	for i, c := range []struct{ name, role string }{{topo.Consumer.Durable, "requests"}, {topo.Advisories.Durable, "safety net (max-deliveries advisories)"}} {
		info, last := d.consumers[i], "never"
		if info == nil {
			fmt.Fprintf(w, "%s\tmissing\t\t\t\t\t%s\n", c.name, c.role)
			continue
		}
		if info.Delivered.Last != nil {
			last = ago(d.now, *info.Delivered.Last)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", c.name, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, last, c.role)
	}
}

func (d *deployment) printReplicas(w io.Writer) {
	pulls, bound := "unknown", 0
	if c := d.consumers[0]; c != nil {
		pulls = strconv.Itoa(c.NumWaiting)
	}
	for _, r := range d.replicas {
		if r.Bound {
			bound++
		}
	}
	summary := fmt.Sprintf("%d answered, %d bound", len(d.replicas), bound)
	if len(d.replicas) == 0 { // none when they could not be asked
		summary = cmp.Or(d.replicasIssue, "none answered")
	}
	fmt.Fprintf(w, "\nREPLICAS: %s (consumer %s: %s waiting pulls)\n", summary, d.cfg.ConsumerName, pulls)
	if len(d.replicas) == 0 {
		return
	}
	fmt.Fprintln(w, "  HOST\tPID\tUP\tCONCURRENCY\tBOUND")
	for _, r := range d.replicas {
		state := "yes"
		if !r.Bound {
			state = "no: " + r.Issue
		}
		up := metrics.ShortDuration(max(d.now.Sub(r.Started), 0).Round(time.Second))
		fmt.Fprintf(w, "  %s\t%d\t%s\t%d\t%s\n", r.Host, r.PID, up, r.Concurrency, state)
	}
}

// byCount is the total of failures, and their kinds, the most frequent first.
func byCount(failures map[message.Kind]int) (total int, kinds []message.Kind) {
	for _, n := range failures {
		total += n
	}
	return total, slices.SortedFunc(maps.Keys(failures), func(a, b message.Kind) int {
		return cmp.Or(cmp.Compare(failures[b], failures[a]), cmp.Compare(a, b))
	})
}

// printTenants prints a line per tenant: those of the file, then the others the results name.
func (d *deployment) printTenants(w io.Writer) {
	var names []string
	for _, t := range d.tenants {
		names = append(names, t.Name)
	}
	others := slices.DeleteFunc(slices.Sorted(maps.Keys(d.byTenant)), func(n string) bool { return slices.Contains(names, n) })
	if len(others) > 0 && others[0] == "" { // sorted first, shown last
		others = append(others[1:], "")
	}
	names = append(names, others...)
	if d.tenants != nil {
		fmt.Fprintf(w, "\nTENANTS: %d configured\n", len(d.tenants))
	} else {
		fmt.Fprintln(w, "\nTENANTS named by the results")
	}
	fmt.Fprintln(w, "  TENANT\tRESULTS (1H)\tFAILURES (1H)\tREQUESTS STORED\tPENDING\tQUOTA USED")
	for i, n := range names {
		ts, label, stored, pending := d.byTenant[n], "(none named)", "-", "-"
		if n != "" {
			label, stored = message.Printable(n, 63), strconv.FormatUint(ts.stored, 10)
			if d.tenants != nil && i >= len(d.tenants) {
				label += " (not configured)"
			}
			if ts.pending >= 0 || ts.stored == 0 {
				pending = strconv.FormatInt(max(ts.pending, 0), 10)
			}
		}
		total, kinds := byCount(ts.failures)
		failures := strconv.Itoa(total)
		if total > 0 {
			parts := make([]string, len(kinds))
			for i, k := range kinds {
				parts[i] = fmt.Sprintf("%d %s", ts.failures[k], message.Printable(string(k), 40))
			}
			failures += " (" + strings.Join(parts, ", ") + ")"
		}
		used := make([]string, len(ts.quota))
		for i, r := range ts.quota {
			used[i] = fmt.Sprintf("%d/%d per %s", r.used, r.limit.Count, metrics.ShortDuration(r.limit.Window))
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\n", label, ts.results, failures, stored, pending, cmp.Or(strings.Join(used, ", "), "-"))
	}
	fmt.Fprint(w, "\nREQUESTS STORED counts the requests kept on the tenant's request subject\n(REQUEST_SUBJECT.<name>), answered or not; PENDING those of them without a\nresult yet (waiting for their quota or a worker, or in hand).\n")
}

// printQuota prints the Defender quota, shared (per app registration) or per process.
func (d *deployment) printQuota(w io.Writer) {
	text := quotaText(d.cfg.RateLimits)
	if len(d.cfg.RateLimits) == 0 {
		text = "none (DEFENDER_RATE_LIMITS=" + cmp.Or(d.cfg.DefenderRateLimits, "none") + ")"
	}
	if d.sharedQuota {
		fmt.Fprintf(w, "\nDEFENDER QUOTA: %s, shared by every replica (QUOTA_SCOPE=shared)\n", text)
		if d.quotaIssue != "" {
			fmt.Fprintf(w, "  quota state %s\n", d.quotaIssue)
			return
		}
		fmt.Fprintln(w, "  APP REGISTRATION\tWINDOW\tLIMIT\tUSED (ALL REPLICAS)\tCOOLDOWN")
		for _, r := range d.quota {
			cool := "-"
			if r.cooldown.After(d.now) {
				cool = "until " + r.cooldown.UTC().Format("15:04:05.000") + " (" + metrics.ShortDuration(r.cooldown.Sub(d.now).Round(time.Millisecond)) + " left)"
			}
			fmt.Fprintf(w, "  %s\t%s\t%d\t%d (%d%%)\t%s\n", r.name, metrics.ShortDuration(r.limit.Window), r.limit.Count, r.used, r.used*100/r.limit.Count, cool)
		}
		fmt.Fprint(w, "\nUSED counts the calls of every replica that hold a slot: running, or ended\nless than a window ago, as the NATS server counts them.\n")
		return
	}
	if len(d.cfg.RateLimits) > 0 {
		text += " per process (DEFENDER_RATE_LIMITS)"
	}
	fmt.Fprintf(w, "\nDEFENDER QUOTA: %s\n", text)
	if len(d.quota) == 0 {
		return
	}
	fmt.Fprintln(w, "  WINDOW\tLIMIT\tUSED")
	for _, r := range d.quota {
		fmt.Fprintf(w, "  %s\t%d\t%d (%d%%)", metrics.ShortDuration(r.limit.Window), r.limit.Count, r.used, r.used*100/r.limit.Count)
		if r.limit.Window > d.scanned {
			fmt.Fprintf(w, "\t(results are kept %s: counted over that)", metrics.ShortDuration(d.scanned))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "\nUSED is the sum of the attempts (Defender calls) of the results stored in the\nwindow, from every replica; calls of deliveries that ended without a result\nare not counted. The quota applies to each process (QUOTA_SCOPE=process):\nreplicas divide the tenant's quota between them.\n")
}

// ago says how long before now t was, to the second.
func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Second:
		return "just now"
	case d < 48*time.Hour:
		return metrics.ShortDuration(d) + " ago"
	case d%(24*time.Hour) < time.Hour:
		return fmt.Sprintf("%dd ago", d/(24*time.Hour))
	}
	return fmt.Sprintf("%dd%dh ago", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
}

func byteSize(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(1024), 0
	for m := n / 1024; m >= 1024; m /= 1024 {
		div *= 1024
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// statusPermissionTenants bounds the tenants whose token status asks for.
const statusPermissionTenants = 50

var errNotChecked = errors.New("not checked (status asks at most 50 tenants' tokens)")

// statusAPIs reads, in the background, each tenant's API and its token's permission.
func statusAPIs(ctx context.Context, cfg *config.Config, list []config.Tenant) <-chan []permissionCheck {
	out := make(chan []permissionCheck, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		checked := list[:min(len(list), statusPermissionTenants)]
		var checks, unusable []permissionCheck
		set, err := tenants.New(checked, func(t *config.Tenant) (tenants.Lookup, error) {
			client, err := newTenantConnector(cfg, t, nil)
			if err != nil {
				unusable = append(unusable, permissionCheck{tenant: t.Name, api: t.API, err: err})
				return nil, nil
			}
			return client, nil
		})
		if err == nil {
			checks = checkPermissions(ctx, set, set.Names())
		}
		for _, t := range list[len(checked):] {
			checks = append(checks, permissionCheck{tenant: t.Name, api: t.API, perm: connector.PermissionUnknown, err: errNotChecked})
		}
		out <- append(unusable, checks...)
	}()
	return out
}

func printAPIs(w io.Writer, checks []permissionCheck) {
	fmt.Fprintln(w, "\nMICROSOFT API\n  TENANT\tAPI\tPERMISSION")
	slices.SortFunc(checks, func(a, b permissionCheck) int { return strings.Compare(a.tenant, b.tenant) })
	for _, c := range checks {
		api, p := string(c.api), c.api.Permission()
		if c.api == connector.MDE {
			api += " (retired " + connector.MDERetirement + ": move to graph)"
		}
		switch {
		case errors.Is(c.err, errNotChecked):
			p = c.err.Error()
		case errors.Is(c.err, connector.ErrNoCredential):
			p = "not checked: this environment names no credential (run status with serve's variables)"
		case c.err != nil:
			if p = "no token: " + strings.Join(strings.Fields(c.err.Error()), " "); len(p) > 130 {
				p = p[:130] + "…" // 120 bytes of the error
			}
		case c.perm == connector.PermissionGranted:
			p += " granted"
		case c.perm == connector.PermissionMissing:
			p += " MISSING: grant admin consent (" + consentStep(c.api) + ")"
		default:
			p += ": the token does not say (no roles claim)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", c.tenant, api, p)
	}
}

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
	quotaLimits           []connector.Limit    // none: the shared quota is not read
	quotaLayout           quota.Layout
	own                   quota.Registration // the app registration of the AZURE_* variables
	byTenant              map[string]*tenantState
	answered              map[uint64]bool // request sequences of the results read
	scanned               time.Duration   // how far back results were read
	sharedQuota           bool            // the rows count the shared quota (QUOTA_SCOPE=shared with limits)
	quotaIssue            string          // why the shared quota could not be read
	quota                 []quotaRow      // of DEFENDER_RATE_LIMITS, or of each app registration
}

// tenantState is what status knows of one tenant ("": results that name none).
type tenantState struct {
	results  int
	failures map[message.Kind]int
	stored   uint64 // requests stored on its request subject
	pending  int64  // of those past the consumer's acknowledgement floor, without a result; -1: not known
	quota    []quotaRow
}

// quotaRow is the use of one limit: of an app registration (name), or of the process.
type quotaRow struct {
	name     string
	limit    connector.Limit
	used     int
	cooldown time.Time // the registration's calls are paused until then
}

func (d *deployment) read(ctx context.Context, js jetstream.JetStream, now time.Time) error {
	nc := js.Conn()
	d.server, d.serverVersion, d.now, d.open = nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion(), now, !nc.AuthRequired()
	d.failures, d.byTenant, d.answered = map[message.Kind]int{}, map[string]*tenantState{}, map[uint64]bool{}
	d.sharedQuota = d.cfg.QuotaScope == quota.ScopeShared && len(d.quotaLimits) > 0
	if !d.sharedQuota { // each process counts alone: the rows add up the results' attempts
		d.quota = quotaRows(d.cfg.RateLimits)
	}
	for _, t := range d.tenants {
		d.tenant(t.Name)
	}
	if err := d.readTopology(ctx, js); err != nil {
		return err
	}
	var err error
	if d.replicas, err = ops.ReadReplicas(ctx, nc, d.cfg); err != nil {
		d.replicasIssue = err.Error()
	}
	d.cache = readCache(ctx, js, d.cfg)
	if d.streams[1] != nil {
		if err := d.readResults(ctx, js); err != nil {
			return err
		}
	}
	if d.streams[0] != nil && d.perTenant() {
		if err := d.readTenantRequests(ctx, js); err != nil {
			return err
		}
	}
	if d.sharedQuota {
		d.readSharedQuota(ctx, js)
	}
	return nil
}

func (d *deployment) tenant(name string) *tenantState {
	ts, ok := d.byTenant[name]
	if !ok {
		ts = &tenantState{failures: map[message.Kind]int{}, pending: -1}
		if !d.sharedQuota {
			ts.quota = quotaRows(d.tenantLimits(name))
		}
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
		res, err := b.Believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
		if res == nil {
			return err == nil, err
		}
		tenant, _ := b.Subjects.Tenant(msg.Subject())
		d.count(res, tenant, d.now.Sub(meta.Timestamp))
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
	for _, rows := range [][]quotaRow{d.quota, ts.quota} { // empty with the shared quota
		for i := range rows {
			if age <= rows[i].limit.Window {
				rows[i].used += r.Attempts
			}
		}
	}
}

func quotaRows(limits []connector.Limit) []quotaRow {
	rows := make([]quotaRow, len(limits))
	for i, l := range limits {
		rows[i].limit = l
	}
	return rows
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

// readSharedQuota fills the quota rows from the shared quota's streams, per app registration and window.
func (d *deployment) readSharedQuota(ctx context.Context, js jetstream.JetStream) {
	use, err := quota.ReadUse(ctx, js, d.quotaLayout, d.quotaLimits)
	if err != nil {
		if d.quotaIssue = err.Error(); errors.Is(err, jetstream.ErrStreamNotFound) {
			d.quotaIssue = missingHint
		}
		return
	}
	cooldowns, _ := quota.ReadCooldowns(ctx, js, d.cfg.ConsumerName)
	own, names := d.own.Key(), map[string]string{}
	keys, held := map[string]bool{}, map[string][]connector.Limit{} // the registrations shown, and the limits each is held to
	keyOf := map[string]string{}                                    // the registration of each tenant shown
	for _, u := range use {
		for k := range u.ByKey {
			keys[k], held[k] = true, append(held[k], u.Limit)
		}
	}
	if d.tenants == nil {
		keys[own], names[own], held[own] = true, d.own.String(), append(held[own], d.quotaLimits...)
		for name := range d.byTenant {
			if name != "" {
				keyOf[name] = own
			}
		}
	} else {
		delete(keys, own)
	}
	for _, t := range d.tenants {
		k := registration(&t).Key()
		if prev, ok := names[k]; ok {
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

func (d *deployment) tenantLimits(name string) []connector.Limit {
	if i := slices.IndexFunc(d.tenants, func(t config.Tenant) bool { return t.Name == name }); i >= 0 {
		return d.tenants[i].RateLimits
	}
	return d.cfg.RateLimits
}
