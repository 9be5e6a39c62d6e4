package main

import (
	"fmt"
	"io"
	"time"

	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/metrics"
)

// printReplicas writes the replicas section of the status screen: who
// answered, for how long each has run and whether each is bound, with the
// consumer's waiting pulls as the server counts them (-1: unknown).
func printReplicas(w io.Writer, now time.Time, consumer string, replicas []ops.Replica, issue string, waiting int) {
	bound := 0
	for _, r := range replicas {
		if r.Bound {
			bound++
		}
	}
	pulls := "unknown"
	if waiting >= 0 {
		pulls = fmt.Sprint(waiting)
	}
	switch {
	case issue != "":
		fmt.Fprintf(w, "REPLICAS: %s (consumer %s: %s waiting pulls)\n", issue, consumer, pulls)
		return
	case len(replicas) == 0:
		fmt.Fprintf(w, "REPLICAS: none answered (consumer %s: %s waiting pulls)\n", consumer, pulls)
		return
	}
	fmt.Fprintf(w, "REPLICAS: %d answered, %d bound (consumer %s: %s waiting pulls)\n", len(replicas), bound, consumer, pulls)
	fmt.Fprintln(w, "  HOST\tPID\tUP\tCONCURRENCY\tBOUND")
	for _, r := range replicas {
		state := "yes"
		if !r.Bound {
			state = "no: " + r.Issue
		}
		up := metrics.ShortDuration(max(now.Sub(r.Started), 0).Round(time.Second))
		fmt.Fprintf(w, "  %s\t%d\t%s\t%d\t%s\n", r.Host, r.PID, up, r.Concurrency, state)
	}
}
