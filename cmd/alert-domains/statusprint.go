package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
)

// printStatus writes the status screen; apis are the tenants' APIs with
// their permission checks.
func printStatus(out io.Writer, st *ops.Status, apis []permissionCheck) error {
	// Each section is a table of its own.
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	section := func() {
		w.Flush()
		fmt.Fprintln(out)
	}
	server := st.Server
	if st.ServerVersion != "" {
		server += " (nats-server " + st.ServerVersion + ")"
	}
	fmt.Fprintf(w, "NATS\t%s\n", server)
	fmt.Fprintf(w, "TIME\t%s\n", st.Now.UTC().Format(time.RFC3339))
	if st.Open {
		fmt.Fprintf(w, "WARNING\tNATS asks no credentials: anyone who reaches it can publish results as the service (see deploy/nats/permissions.conf)\n")
	}
	if st.Ignored > 0 {
		fmt.Fprintf(w, "WARNING\t%d messages on result subjects were not written by the service and are ignored\n", st.Ignored)
	}
	section()

	fmt.Fprintln(w, "STREAM\tMESSAGES\tBYTES\tOLDEST\tNEWEST")
	for _, s := range st.Streams {
		if s.Info == nil {
			fmt.Fprintf(w, "%s\t%s\n", s.Name, s.Issue)
			continue
		}
		state := s.Info.State
		oldest, newest := "-", "-"
		if state.Msgs > 0 {
			oldest, newest = ago(st.Now, state.FirstTime), ago(st.Now, state.LastTime)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", s.Name, state.Msgs, byteSize(state.Bytes), oldest, newest)
	}
	section()

	fmt.Fprintln(w, "CONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tWAITING\tLAST DELIVERY\tROLE")
	for _, c := range st.Consumers {
		if c.Info == nil {
			fmt.Fprintf(w, "%s\t%s\t\t\t\t\t%s\n", c.Name, c.Issue, c.Role)
			continue
		}
		i := c.Info
		last := "never"
		if i.Delivered.Last != nil {
			last = ago(st.Now, *i.Delivered.Last)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", c.Name, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, last, c.Role)
	}
	section()

	waiting := -1
	if c := st.Consumers[0]; c.Info != nil {
		waiting = c.Info.NumWaiting
	}
	printReplicas(w, st.Now, st.Consumers[0].Name, st.Replicas, st.ReplicasIssue, waiting)
	section()

	fmt.Fprintf(w, "CACHE\t%s\n", cacheText(st.Cache))
	section()

	if len(st.Failures) == 0 {
		fmt.Fprintln(w, "FAILURES IN THE LAST HOUR: none")
	} else {
		kinds := make([]message.Kind, 0, len(st.Failures))
		total := 0
		for k, n := range st.Failures {
			kinds = append(kinds, k)
			total += n
		}
		slices.SortFunc(kinds, func(a, b message.Kind) int {
			return cmp.Or(cmp.Compare(st.Failures[b], st.Failures[a]), cmp.Compare(a, b))
		})
		fmt.Fprintf(w, "FAILURES IN THE LAST HOUR: %d\n", total)
		fmt.Fprintln(w, "  KIND\tCOUNT")
		for _, k := range kinds {
			fmt.Fprintf(w, "  %s\t%d\n", message.Printable(string(k), 40), st.Failures[k])
		}
	}
	section()

	printAPIs(w, apis)
	section()

	if st.TenantsIssue != "" {
		fmt.Fprintf(w, "TENANTS: TENANTS_FILE not used: %s\n", st.TenantsIssue)
		section()
	}
	if st.PerTenant() {
		printTenants(w, st)
		section()
	}

	if st.Shared != nil {
		printShared(w, st)
		return w.Flush()
	}
	fmt.Fprintf(w, "DEFENDER QUOTA: %s\n", quotaText(st.LimitsText, st.Limits))
	if len(st.Limits) > 0 {
		fmt.Fprintln(w, "  WINDOW\tLIMIT\tUSED")
		for _, l := range st.Limits {
			used := st.Used[l.Window]
			fmt.Fprintf(w, "  %s\t%d\t%d (%d%%)", metrics.ShortDuration(l.Window), l.Count, used, used*100/l.Count)
			if l.Window > st.Scanned {
				fmt.Fprintf(w, "\t(results are kept %s: counted over that)", metrics.ShortDuration(st.Scanned))
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
func printShared(w *tabwriter.Writer, st *ops.Status) {
	sq := st.Shared
	fmt.Fprintf(w, "DEFENDER QUOTA: %s, shared by every replica (QUOTA_SCOPE=shared)\n", strings.TrimSuffix(quotaText(st.LimitsText, st.Limits), " per process (DEFENDER_RATE_LIMITS)"))
	if sq.Issue != "" {
		fmt.Fprintf(w, "  quota state %s\n", sq.Issue)
		return
	}
	ownKey := sq.Own.Key()
	keys := map[string]bool{ownKey: true}
	for _, u := range sq.Use {
		for k := range u.ByKey {
			keys[k] = true
		}
	}
	if st.Tenants != nil {
		// With the file, the registrations are the tenants'.
		delete(keys, ownKey)
		for _, t := range st.Tenants {
			if len(t.RateLimits) > 0 {
				keys[tenantRegistration(&t).Key()] = true
			}
		}
	}
	names := map[string]string{ownKey: sq.Own.String()}
	// The limits each registration is held to: its tenants' (each count of
	// a window is a stream of its own), or without the file all of them.
	held := map[string][]connector.Limit{}
	if st.Tenants == nil {
		for _, u := range sq.Use {
			held[ownKey] = append(held[ownKey], u.Limit)
		}
	}
	for _, t := range st.Tenants {
		k := tenantRegistration(&t).Key()
		if prev, ok := names[k]; ok && k != ownKey {
			names[k] = prev + ", " + t.Name
		} else {
			names[k] = "tenant " + t.Name
		}
		held[k] = append(held[k], quota.Enforced(t.RateLimits)...)
	}
	sorted := slices.Sorted(maps.Keys(keys))
	fmt.Fprintln(w, "  APP REGISTRATION\tWINDOW\tLIMIT\tUSED (ALL REPLICAS)\tCOOLDOWN")
	for _, k := range sorted {
		name := cmp.Or(names[k], "key "+k)
		cool := "-"
		if until, ok := sq.Cooldowns[k]; ok && until.After(st.Now) {
			cool = "until " + until.UTC().Format("15:04:05.000") + " (" + metrics.ShortDuration(until.Sub(st.Now).Round(time.Millisecond)) + " left)"
		}
		for _, u := range sq.Use {
			used, ok := u.ByKey[k]
			if !ok && !slices.Contains(held[k], u.Limit) {
				continue // a stream of another count of the window
			}
			fmt.Fprintf(w, "  %s\t%s\t%d\t%d (%d%%)\t%s\n", name, metrics.ShortDuration(u.Limit.Window), u.Limit.Count, used, used*100/u.Limit.Count, cool)
		}
	}
	w.Flush()
	fmt.Fprintln(w, "\nUSED counts the calls of every replica that hold a slot: running, or ended")
	fmt.Fprintln(w, "less than a window ago, as the NATS server counts them.")
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

// cacheText is the cache line of the status screen.
func cacheText(c ops.CacheStatus) string {
	switch {
	case c.Stream == "":
		return "off (CACHE_TTL=0)"
	case c.Issue != "":
		return fmt.Sprintf("success results of stream %s, TTL %s: %s", c.Stream, metrics.ShortDuration(c.TTL), c.Issue)
	}
	return fmt.Sprintf("success results of stream %s, TTL %s: %d stored in the last %s", c.Stream, metrics.ShortDuration(c.TTL), c.Results, metrics.ShortDuration(c.TTL))
}
