package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
)

const replaySynopsis = `replay --failed [--kind K1,K2] [--alert ID] [--tenant NAME] [--since D] [--until D] [flags]
       alert-domains replay --from-seq N [--to-seq M] [--tenant NAME] [flags]
       alert-domains replay --since D [--until D] [--tenant NAME] [flags]

Sends requests through the service again: the request of each matching
failure result (--failed), or the stored request messages in a range of
REQUEST_STREAM. Each goes to REQUEST_SUBJECT with its original body and
headers (without the Nats-* headers the server interprets), the header
Replay-Of: <original stream sequence> and a message ID of replay's own,
derived from the request and the failure it answers, so that two runs at
once store each copy once. Each original at most once per run. replay never
deletes anything.

Without --kind, --failed takes only the kinds a replay can fix: unavailable,
throttled, unauthorized, forbidden, unknown_tenant; --kind all takes every
kind.

With --failed, a failure is skipped when its alert has a success result
stored after it, or when replay already published a copy answering it
(told by its content, never by a header alone): running the same replay
twice republishes nothing new.

--tenant NAME takes only that tenant's requests: those published to
REQUEST_SUBJECT.NAME or naming it in their body's tenant field, and (with
--failed) the failures whose result names it. A request that failed before
its tenant was configured (unknown_tenant) is found by its subject or body.

--since and --until take a duration back from now (2h) or an RFC 3339 time.`

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replay", replaySynopsis)
	raw := defineReplayFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("replay takes no arguments (got %q)", fs.Arg(0))
	}
	opts, err := raw.options(fs, time.Now())
	if err != nil {
		return err
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	js, closeConn, err := connectClient(ctx, e, cfg, "replay", jetstream.WithPublishAsyncMaxPending(ops.ReplayWindow))
	if err != nil {
		return err
	}
	defer closeConn()
	stopTraces, err := traceReplay(e, cfg, opts)
	if err != nil {
		return err
	}
	defer stopTraces()
	r, err := ops.NewReplay(ctx, js, cfg, *opts)
	if err != nil {
		return err
	}
	items, err := r.Plan(ctx)
	if err != nil {
		return err
	}
	prog := newProgress(e.stdout, e.stderr)
	prog.start(len(items), opts.DryRun)
	err = r.Republish(ctx, items, func(ev ops.ReplayEvent) {
		prog.println(e.stdout, replayLine(ev))
		prog.step()
	})
	prog.finish()
	sum := r.Summary()
	prog.println(e.stdout, replaySummary(opts, &sum))
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return errSomeFailed
	}
	return nil
}

// replayFlagValues are the flags of replay as given.
type replayFlagValues struct {
	failed, dryRun *bool
	kinds, alert   *string
	tenant         *string
	since, until   *string
	fromSeq, toSeq *uint64
	perSecond      *float64
}

func defineReplayFlags(fs *flag.FlagSet) *replayFlagValues {
	return &replayFlagValues{
		failed:    fs.Bool("failed", false, "replay the requests of failure results"),
		kinds:     fs.String("kind", "", "with --failed: only these failure kinds, comma separated, or all (default: unavailable,throttled,unauthorized,forbidden,unknown_tenant)"),
		alert:     fs.String("alert", "", "with --failed: only failures of this alert ID"),
		tenant:    fs.String("tenant", "", "only the requests of this tenant (published to REQUEST_SUBJECT.NAME or naming it in their body)"),
		since:     fs.String("since", "", "only results (--failed) or requests stored since then"),
		until:     fs.String("until", "", "only results (--failed) or requests stored until then"),
		fromSeq:   fs.Uint64("from-seq", 0, "first stream sequence of REQUEST_STREAM to replay"),
		toSeq:     fs.Uint64("to-seq", 0, "last stream sequence to replay (default: the last stored)"),
		dryRun:    fs.Bool("dry-run", false, "list what would be republished, publish nothing"),
		perSecond: fs.Float64("rate", 500, "republish at most this many requests per second"),
	}
}

// options checks the parsed flags of fs against the forms of the contract
// and reads the times.
func (v *replayFlagValues) options(fs *flag.FlagSet, now time.Time) (*ops.ReplayOptions, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	failed, kinds, alert, since, until := *v.failed, *v.kinds, *v.alert, *v.since, *v.until
	fromSeq, toSeq, perSecond := *v.fromSeq, *v.toSeq, *v.perSecond
	o := &ops.ReplayOptions{Failed: failed, Alert: alert, Tenant: *v.tenant, FromSeq: fromSeq, ToSeq: toSeq, DryRun: *v.dryRun, Rate: perSecond}
	switch {
	case failed && (set["from-seq"] || set["to-seq"]):
		return nil, usageErrorf("replay: --failed selects failure results; --from-seq and --to-seq select stored requests: use one form")
	case !failed && (set["kind"] || set["alert"]):
		return nil, usageErrorf("replay: --kind and --alert need --failed")
	case !failed && !set["from-seq"] && !set["since"]:
		return nil, usageErrorf("replay: say what to replay: --failed, --from-seq N or --since D")
	case set["from-seq"] && set["since"]:
		return nil, usageErrorf("replay: use --from-seq or --since, not both")
	case set["to-seq"] && !set["from-seq"]:
		return nil, usageErrorf("replay: --to-seq needs --from-seq")
	case set["until"] && !failed && !set["since"]:
		return nil, usageErrorf("replay: --until needs --since (or --failed)")
	case set["from-seq"] && fromSeq == 0:
		return nil, usageErrorf("replay: --from-seq: stream sequences start at 1")
	case set["to-seq"] && toSeq < fromSeq:
		return nil, usageErrorf("replay: --to-seq %d is before --from-seq %d", toSeq, fromSeq)
	case perSecond <= 0:
		return nil, usageErrorf("replay: --rate must be more than 0")
	case set["tenant"] && !config.ValidTenantName(o.Tenant):
		return nil, usageErrorf("replay: --tenant: %q is not a tenant name ([a-z0-9][a-z0-9-]{0,62})", o.Tenant)
	}
	var err error
	if o.Kinds, o.DefaultKinds, err = ops.ParseKinds(kinds); err != nil {
		return nil, usageErrorf("replay: --kind: %v", err)
	}
	if alert != "" {
		if err := message.ValidateAlertID(alert); err != nil {
			return nil, usageErrorf("replay: --alert: %v", err)
		}
	}
	if since != "" {
		if o.Since, err = ops.ParseWhen(since, now); err != nil {
			return nil, usageErrorf("replay: --since: %v", err)
		}
	}
	if until != "" {
		if o.Until, err = ops.ParseWhen(until, now); err != nil {
			return nil, usageErrorf("replay: --until: %v", err)
		}
		if !o.Since.IsZero() && !o.Until.After(o.Since) {
			return nil, usageErrorf("replay: --until must be after --since")
		}
	}
	return o, nil
}

// replayLine is the line of one candidate: what happened, the original's
// sequence, the alert and the detail.
func replayLine(ev ops.ReplayEvent) string {
	alert := ev.AlertID
	if alert == "" {
		alert = "-"
	}
	detail := ev.Detail
	if ev.Note != "" {
		detail = ev.Note + "; " + detail
	}
	return fmt.Sprintf("%-15s  %8d  %-32s  %s", ev.What, ev.Seq, message.Printable(alert, 128), message.Printable(detail, 1024))
}

// replaySummary is the last line of a run.
func replaySummary(o *ops.ReplayOptions, s *ops.ReplaySummary) string {
	what := "stored requests"
	if o.Failed {
		what = "failure results"
	}
	line := fmt.Sprintf("found %d %s", s.Found, what)
	also := ""
	if o.Tenant != "" {
		also = "/--tenant"
	}
	switch {
	case s.Filtered > 0 && !o.Failed:
		line += fmt.Sprintf(" (%d more in the range are requests of other tenants than --tenant)", s.Filtered)
	case s.Filtered > 0 && o.DefaultKinds:
		line += fmt.Sprintf(" (%d more in the time range are of kinds a replay cannot fix or did not match --alert%s; --kind all takes every kind)", s.Filtered, also)
	case s.Filtered > 0:
		line += fmt.Sprintf(" (%d more in the time range did not match --kind/--alert%s)", s.Filtered, also)
	}
	verb := "republished"
	if o.DryRun {
		verb = "would republish"
	}
	skipped := 0
	reasons := make([]string, 0, len(s.Skipped))
	for why, n := range s.Skipped {
		skipped += n
		reasons = append(reasons, fmt.Sprintf("%d %s", n, why))
	}
	slices.Sort(reasons)
	line += fmt.Sprintf("; %s %d, skipped %d", verb, s.Republished, skipped)
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, ", ") + ")"
	}
	if s.Failed > 0 {
		line += fmt.Sprintf(", failed %d", s.Failed)
	}
	if s.Ignored > 0 {
		line += fmt.Sprintf("; %d messages on result subjects were not written by the service and were ignored", s.Ignored)
	}
	if o.DryRun {
		line += "; dry run: nothing was published"
	}
	return line
}
