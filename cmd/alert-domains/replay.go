package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
)

const replayUsage = `replay --failed [--kind K1,K2] [--alert ID] [--tenant NAME] [--since D] [--until D] [flags]
       alert-domains replay --from-seq N [--to-seq M] [--tenant NAME] [flags]
       alert-domains replay --since D [--until D] [--tenant NAME] [flags]

Sends requests through the service again: the request of each matching
failure result (--failed), or the stored requests in a range of
REQUEST_STREAM. Each copy goes to its original's subject with its body and
headers (but the Nats-* ones), the header Replay-Of: <original stream
sequence> and a message ID of replay's own, so two runs at once store it
once. Each original at most once per run; replay never deletes anything.

Without --kind, --failed takes only the kinds a replay can fix: unavailable,
throttled, unauthorized, forbidden, unknown_tenant; --kind all takes every
kind ('alert-domains help kinds' says what each means). A failure is skipped
when its alert succeeded since, or when replay already published a copy
answering it (told by its content, never by a header alone): running the
same replay twice republishes nothing new.

--tenant NAME takes only the requests published to REQUEST_SUBJECT.NAME or
naming it in their body's tenant field, and (with --failed) the failures
whose result names it. --since and --until take a duration back from now
(2h) or an RFC 3339 time. docs/operations.md has the details.`

const cliFlushTimeout = 5 * time.Second

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := e.flags("replay")
	f := defineReplayFlags(fs, time.Now())
	if err := parse(fs, args, true); err != nil {
		return err
	}
	opts, err := f.options(fs)
	if err != nil {
		return err
	}
	cfg, js, closeConn, err := connectClient(ctx, e, "replay")
	if err != nil {
		return err
	}
	defer closeConn()
	traces, err := newTracing(e, newLogger(cfg, e))
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), min(cfg.ShutdownTimeout, cliFlushTimeout))
		defer cancel()
		_ = traces.Shutdown(ctx)
	}()
	opts.TracerProvider, opts.Propagator = traces.TracerProvider(), traces.Propagator()
	r, err := ops.NewReplay(ctx, js, cfg, *opts)
	if err != nil {
		return err
	}
	items, err := r.Plan(ctx)
	if err != nil {
		return err
	}
	prog, verb, done := newProgress(e.stdout, e.stderr), "replaying", 0
	if opts.DryRun {
		verb = "checking"
	}
	err = r.Republish(ctx, items, func(ev ops.ReplayEvent) {
		prog.println(e.stdout, replayLine(ev))
		done++
		prog.draw(fmt.Sprintf("%s %d/%d", verb, done, len(items)))
	})
	prog.draw("")
	sum := r.Summary()
	prog.println(e.stdout, replaySummary(opts, &sum))
	if err == nil && sum.Failed > 0 {
		return errSomeFailed
	}
	return err
}

type replayFlags struct {
	o     ops.ReplayOptions
	kinds string
}

func defineReplayFlags(fs *flag.FlagSet, now time.Time) *replayFlags {
	f := &replayFlags{}
	fs.BoolVar(&f.o.Failed, "failed", false, "replay the requests of failure results")
	fs.StringVar(&f.kinds, "kind", "", "with --failed: only these failure kinds, comma separated, or all (default: unavailable,throttled,unauthorized,forbidden,unknown_tenant)")
	fs.StringVar(&f.o.Alert, "alert", "", "with --failed: only failures of this alert ID")
	fs.StringVar(&f.o.Tenant, "tenant", "", "only the requests of this tenant (published to REQUEST_SUBJECT.NAME or naming it in their body)")
	whenVar(fs, &f.o.Since, "since", now, "only results (--failed) or requests stored since `D`")
	whenVar(fs, &f.o.Until, "until", now, "only results (--failed) or requests stored until `D`")
	fs.Uint64Var(&f.o.FromSeq, "from-seq", 0, "first stream sequence of REQUEST_STREAM to replay")
	fs.Uint64Var(&f.o.ToSeq, "to-seq", 0, "last stream sequence to replay (default: the last stored)")
	fs.BoolVar(&f.o.DryRun, "dry-run", false, "list what would be republished, publish nothing")
	fs.Float64Var(&f.o.Rate, "rate", 500, "republish at most this many requests per second")
	return f
}

// options checks the parsed flags of fs against the forms of the contract and reads the kinds.
func (f *replayFlags) options(fs *flag.FlagSet) (*ops.ReplayOptions, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	o := f.o
	if err := checkTenant("replay", o.Tenant); err != nil {
		return nil, err
	}
	for _, bad := range []struct {
		when bool
		why  string
	}{
		{o.Failed && (set["from-seq"] || set["to-seq"]), "--failed selects failure results; --from-seq and --to-seq select stored requests: use one form"},
		{!o.Failed && (set["kind"] || set["alert"]), "--kind and --alert need --failed"},
		{!o.Failed && !set["from-seq"] && !set["since"], "say what to replay: --failed, --from-seq N or --since D"},
		{set["from-seq"] && set["since"], "use --from-seq or --since, not both"},
		{set["to-seq"] && !set["from-seq"], "--to-seq needs --from-seq"},
		{set["until"] && !o.Failed && !set["since"], "--until needs --since (or --failed)"},
		{set["from-seq"] && o.FromSeq == 0, "--from-seq: stream sequences start at 1"},
		{set["to-seq"] && o.ToSeq < o.FromSeq, fmt.Sprintf("--to-seq %d is before --from-seq %d", o.ToSeq, o.FromSeq)},
		{o.Rate <= 0, "--rate must be more than 0"},
	} {
		if bad.when {
			return nil, usageErrorf("replay: %s", bad.why)
		}
	}
	var err error
	if o.Kinds, o.DefaultKinds, err = ops.ParseKinds(f.kinds); err != nil {
		return nil, usageErrorf("replay: --kind: %v", err)
	}
	if o.Alert != "" {
		if err := message.ValidateAlertID(o.Alert); err != nil {
			return nil, usageErrorf("replay: --alert: %v", err)
		}
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && !o.Until.After(o.Since) {
		return nil, usageErrorf("replay: --until must be after --since")
	}
	return &o, nil
}

// replayLine is the line of one candidate: what happened, the original's sequence, the alert and the detail.
func replayLine(ev ops.ReplayEvent) string {
	detail := ev.Detail
	if ev.Note != "" {
		detail = ev.Note + "; " + detail
	}
	return fmt.Sprintf("%-15s  %8d  %-32s  %s", ev.What, ev.Seq, message.Printable(cmp.Or(ev.AlertID, "-"), 128), message.Printable(detail, 1024))
}

// replaySummary is the last line of a run.
func replaySummary(o *ops.ReplayOptions, s *ops.ReplaySummary) string {
	line := fmt.Sprintf("found %d stored requests", s.Found)
	if o.Failed {
		line = fmt.Sprintf("found %d failure results", s.Found)
	}
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
	skipped, reasons := 0, []string{}
	for why, n := range s.Skipped {
		skipped += n
		reasons = append(reasons, fmt.Sprintf("%d %s", n, why))
	}
	slices.Sort(reasons)
	line += fmt.Sprintf("; %s %d, skipped %d", map[bool]string{false: "republished", true: "would republish"}[o.DryRun], s.Republished, skipped)
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, ", ") + ")"
	}
	if s.Failed > 0 {
		line += fmt.Sprintf(", failed %d", s.Failed)
	}
	if s.Ignored > 0 {
		line += fmt.Sprintf("; %d messages on result subjects were not written by the service for a stored request and were ignored", s.Ignored)
	}
	if o.DryRun {
		line += "; dry run: nothing was published"
	}
	return line
}
