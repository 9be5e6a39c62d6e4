package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
)

// printTenants prints a line per tenant: those of the file, then any other
// the results name, then the results that name none.
func printTenants(w *tabwriter.Writer, st *ops.Status) {
	var names []string
	configured := map[string]bool{}
	for _, t := range st.Tenants {
		names = append(names, t.Name)
		configured[t.Name] = true
	}
	for _, n := range slices.Sorted(maps.Keys(st.ByTenant)) {
		if !configured[n] && n != "" {
			names = append(names, n)
		}
	}
	if _, ok := st.ByTenant[""]; ok {
		names = append(names, "")
	}
	if st.Tenants != nil {
		fmt.Fprintf(w, "TENANTS: %d configured\n", len(st.Tenants))
	} else {
		fmt.Fprintln(w, "TENANTS named by the results")
	}
	fmt.Fprintln(w, "  TENANT\tRESULTS (1H)\tFAILURES (1H)\tREQUESTS STORED\tPENDING\tQUOTA USED")
	for _, n := range names {
		ts := st.ByTenant[n]
		label := message.Printable(n, 63)
		switch {
		case n == "":
			label = "(none named)"
		case st.Tenants != nil && !configured[n]:
			label = n + " (not configured)"
		}
		stored, pending := "-", "-"
		if n != "" {
			stored = strconv.FormatUint(ts.Stored, 10)
			if ts.Pending >= 0 {
				pending = strconv.FormatInt(ts.Pending, 10)
			} else if ts.Stored == 0 {
				pending = "0"
			}
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\n", label, ts.Results, failureText(ts.Failures), stored, pending, quotaUsedText(st, n, ts))
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
		parts[i] = fmt.Sprintf("%d %s", failures[k], message.Printable(string(k), 40))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// quotaUsedText is the quota the tenant's app registration used in each
// window: as the shared quota counts it, or (QUOTA_SCOPE=process) the
// attempts of the tenant's results.
func quotaUsedText(st *ops.Status, name string, ts *ops.TenantStatus) string {
	var parts []string
	if sq := st.Shared; sq != nil {
		var key string
		for _, t := range st.Tenants {
			if t.Name == name {
				key = tenantRegistration(&t).Key()
			}
		}
		if st.Tenants == nil && name != "" {
			key = sq.Own.Key()
		}
		if key == "" || sq.Issue != "" {
			return "-"
		}
		// Each of the tenant's limits against its own count: the stream
		// of that count of the window.
		for _, l := range quota.Enforced(st.TenantLimits(name)) {
			for _, u := range sq.Use {
				if u.Limit == l {
					parts = append(parts, fmt.Sprintf("%d/%d per %s", u.ByKey[key], l.Count, metrics.ShortDuration(l.Window)))
				}
			}
		}
	} else {
		for _, l := range st.TenantLimits(name) {
			parts = append(parts, fmt.Sprintf("%d/%d per %s", ts.Used[l.Window], l.Count, metrics.ShortDuration(l.Window)))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
