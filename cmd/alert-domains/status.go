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

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
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
	// status needs no credential, only the app registration of the quota.
	own, err := cfg.EnvironmentTenant()
	if err != nil {
		own.Credential.TenantID, own.Credential.ClientID = cfg.AzureTenantID, cfg.AzureClientID
	}
	q := statusQuery{tenants: list, quotaLimits: cfg.RateLimits, registration: registration(&own)}
	if list != nil && cfg.QuotaScope == quota.ScopeShared {
		if q.quotaLayout, q.quotaLimits, err = sharedQuota(cfg, list); err != nil {
			tenantsIssue, q.quotaLimits = err.Error(), nil
		}
	}
	d, err := readDeployment(ctx, js, cfg, q, time.Now())
	if err != nil {
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

// printStatus writes the status screen, a table per section.
func printStatus(out io.Writer, d *deployment, apis []permissionCheck, tenantsIssue string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	sections := []func(){
		func() { d.printHeader(w) },
		func() { d.printTopology(w) },
		func() { d.printReplicas(w) },
		func() { fmt.Fprintf(w, "CACHE\t%s\n", d.cache) },
		func() { printFailures(w, d.failures) },
		func() { printAPIs(w, apis) },
	}
	if tenantsIssue != "" {
		sections = append(sections, func() { fmt.Fprintf(w, "TENANTS: TENANTS_FILE not used: %s\n", tenantsIssue) })
	}
	if d.perTenant() {
		sections = append(sections, func() { d.printTenants(w) })
	}
	sections = append(sections, func() { d.printQuota(w) })
	for i, s := range sections {
		if i > 0 {
			w.Flush()
			fmt.Fprintln(out)
		}
		s()
	}
	return w.Flush()
}

func (d *deployment) printHeader(w io.Writer) {
	server := d.server
	if d.serverVersion != "" {
		server += " (nats-server " + d.serverVersion + ")"
	}
	fmt.Fprintf(w, "NATS\t%s\nTIME\t%s\n", server, d.now.UTC().Format(time.RFC3339))
	if d.open {
		fmt.Fprintf(w, "WARNING\tNATS asks no credentials: anyone who reaches it can publish results as the service (see deploy/nats/permissions.conf)\n")
	}
	if d.ignored > 0 {
		fmt.Fprintf(w, "WARNING\t%d messages on result subjects were not written by the service and are ignored\n", d.ignored)
	}
}

// printTopology writes the streams, then the consumers.
func (d *deployment) printTopology(w *tabwriter.Writer) {
	fmt.Fprintln(w, "STREAM\tMESSAGES\tBYTES\tOLDEST\tNEWEST")
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
	w.Flush()
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

// printReplicas writes the replicas that answered and the consumer's waiting pulls.
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
	switch {
	case d.replicasIssue != "":
		summary = d.replicasIssue
	case len(d.replicas) == 0:
		summary = "none answered"
	}
	fmt.Fprintf(w, "REPLICAS: %s (consumer %s: %s waiting pulls)\n", summary, d.cfg.ConsumerName, pulls)
	if d.replicasIssue != "" || len(d.replicas) == 0 {
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

func printFailures(w io.Writer, failures map[message.Kind]int) {
	if len(failures) == 0 {
		fmt.Fprintln(w, "FAILURES IN THE LAST HOUR: none")
		return
	}
	total, kinds := byCount(failures)
	fmt.Fprintf(w, "FAILURES IN THE LAST HOUR: %d\n  KIND\tCOUNT\n", total)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %s\t%d\n", message.Printable(string(k), 40), failures[k])
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
func (d *deployment) printTenants(w *tabwriter.Writer) {
	var names []string
	for _, t := range d.tenants {
		names = append(names, t.Name)
	}
	for _, n := range slices.Sorted(maps.Keys(d.byTenant)) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if _, ok := d.byTenant[""]; ok {
		names = append(names, "")
	}
	if d.tenants != nil {
		fmt.Fprintf(w, "TENANTS: %d configured\n", len(d.tenants))
	} else {
		fmt.Fprintln(w, "TENANTS named by the results")
	}
	fmt.Fprintln(w, "  TENANT\tRESULTS (1H)\tFAILURES (1H)\tREQUESTS STORED\tPENDING\tQUOTA USED")
	for _, n := range names {
		ts, label, stored, pending := d.byTenant[n], message.Printable(n, 63), "-", "-"
		switch {
		case n == "":
			label = "(none named)"
		case d.tenants != nil && !slices.ContainsFunc(d.tenants, func(t config.Tenant) bool { return t.Name == n }):
			label += " (not configured)"
		}
		if n != "" {
			stored = strconv.FormatUint(ts.stored, 10)
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
	w.Flush()
	fmt.Fprint(w, "\nREQUESTS STORED counts the requests kept on the tenant's request subject\n(REQUEST_SUBJECT.<name>), answered or not; PENDING those of them without a\nresult yet (waiting for their quota or a worker, or in hand).\n")
}

// printQuota prints the Defender quota, shared (per app registration) or per process.
func (d *deployment) printQuota(w *tabwriter.Writer) {
	text := quotaText(d.cfg.RateLimits)
	if len(d.cfg.RateLimits) == 0 {
		text = "none (DEFENDER_RATE_LIMITS=" + cmp.Or(d.cfg.DefenderRateLimits, "none") + ")"
	}
	if d.sharedQuota {
		fmt.Fprintf(w, "DEFENDER QUOTA: %s, shared by every replica (QUOTA_SCOPE=shared)\n", text)
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
		w.Flush()
		fmt.Fprint(w, "\nUSED counts the calls of every replica that hold a slot: running, or ended\nless than a window ago, as the NATS server counts them.\n")
		return
	}
	if len(d.cfg.RateLimits) > 0 {
		text += " per process (DEFENDER_RATE_LIMITS)"
	}
	fmt.Fprintf(w, "DEFENDER QUOTA: %s\n", text)
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
	w.Flush()
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

// printAPIs writes each tenant's API and its token's permission.
func printAPIs(w io.Writer, checks []permissionCheck) {
	fmt.Fprintln(w, "MICROSOFT API\n  TENANT\tAPI\tPERMISSION")
	slices.SortFunc(checks, func(a, b permissionCheck) int { return strings.Compare(a.tenant, b.tenant) })
	for _, c := range checks {
		api, p := string(c.api), c.api.Permission()
		if c.api == connector.MDE {
			api += " (retired " + connector.MDERetirement + ": move to graph)"
		}
		switch {
		case errors.Is(c.err, errNotChecked):
			p = c.err.Error()
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
