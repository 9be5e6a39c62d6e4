package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
)

const tailUsage = `tail [--since D] [--failed | --succeeded] [--tenant NAME] [--json]

Follows the results as they are stored in RESULT_STREAM, one line each: when
it completed, the status, the tenant, the alert, and its domains or the error
kind. It runs until interrupted (Ctrl-C), then exits 0. Results go to stdout,
everything else (what it follows, logs) to stderr.

--tenant NAME follows only that tenant's results: those on
SUCCESS_SUBJECT.NAME and FAILURE_SUBJECT.NAME, and those on the plain
subjects whose tenant field is NAME.`

func runTail(ctx context.Context, e *env, args []string) error {
	fs := e.flags("tail")
	var o ops.TailOptions
	whenVar(fs, &o.Since, "since", time.Now(), "start with the results stored since `D`: a duration back from now (1h) or an RFC 3339 time (default: only new results)")
	fs.BoolVar(&o.Failed, "failed", false, "only failure results")
	fs.BoolVar(&o.Succeeded, "succeeded", false, "only success results")
	fs.StringVar(&o.Tenant, "tenant", "", "only the results of this tenant")
	asJSON := fs.Bool("json", false, "print each result's JSON as stored, one per line")
	if err := parse(fs, args, true); err != nil {
		return err
	}
	if o.Failed && o.Succeeded {
		return usageErrorf("tail: --failed and --succeeded exclude each other")
	}
	if err := checkTenant("tail", o.Tenant); err != nil {
		return err
	}
	cfg, js, closeConn, err := connectClient(ctx, e, "tail")
	if err != nil {
		return err
	}
	defer closeConn()
	tail, err := ops.OpenTail(ctx, js, cfg, o)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s does not exist: start 'alert-domains serve' once with PROVISION=true to create it: %w", cfg.ResultStream, err)
	}
	if err != nil {
		return interrupted(ctx, err)
	}
	defer tail.Stop()
	fmt.Fprintf(e.stderr, "following results on %s (Ctrl-C to stop)\n", strings.Join(tail.Subjects, ", "))
	ignored := 0
	for {
		msg, res, tenant, err := tail.Next(ctx)
		if err != nil {
			return interrupted(ctx, err)
		}
		if n := tail.Ignored(); n > ignored {
			fmt.Fprintf(e.stderr, "alert-domains: tail: %d messages on result subjects were not written by the service for a stored request and are not shown\n", n-ignored)
			ignored = n
		}
		line := resultLine(res, tenant)
		if *asJSON {
			line = string(msg.Data())
		}
		if _, err := fmt.Fprintln(e.stdout, line); err != nil {
			return err
		}
	}
}

func checkTenant(command, name string) error {
	if name != "" && !config.ValidTenantName(name) {
		return usageErrorf("%s: --tenant: %q is not a tenant name ([a-z0-9][a-z0-9-]{0,62})", command, name)
	}
	return nil
}

// whenVar defines the flag name of a point in time, read by ops.ParseWhen into t.
func whenVar(fs *flag.FlagSet, t *time.Time, name string, now time.Time, usage string) {
	fs.Func(name, usage, func(s string) (err error) {
		*t, err = ops.ParseWhen(s, now)
		return err
	})
}

// interrupted is nil when the interruption caused err.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// resultLine is one result as tail prints it, every text from the wire printable and bounded.
func resultLine(r *message.Result, tenant string) string {
	detail := resultDetail(r, "(no domains)")
	if r.Cached != nil && *r.Cached {
		detail += " [cached]"
	}
	extra := fmt.Sprintf("seq %d", r.RequestSequence)
	if r.ReplayOf != 0 {
		extra += fmt.Sprintf(", replay of %d", r.ReplayOf)
	}
	return fmt.Sprintf("%-24s  %-7s  %-12s  %-32s  %s  [%s]", message.Printable(r.CompletedAt, 32), message.Printable(r.Status, 8),
		cmp.Or(message.Printable(cmp.Or(tenant, r.Tenant), 63), "-"), message.Printable(cmp.Or(r.AlertID, "-"), 128), message.Printable(detail, 2048), extra)
}

// resultDetail is the domains of a success or the error of a failure.
func resultDetail(r *message.Result, none string) string {
	if r.Error == nil {
		return cmp.Or(strings.Join(r.Domains, ", "), none)
	}
	if r.Error.HTTPStatus != 0 {
		return fmt.Sprintf("%s: %s (HTTP %d)", r.Error.Kind, r.Error.Message, r.Error.HTTPStatus)
	}
	return string(r.Error.Kind) + ": " + r.Error.Message
}
