package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/handlers"
)

// replayWindow bounds the republished requests waiting for the stream's
// acknowledgement.
const replayWindow = 256

// Why a replay candidate is not republished.
const (
	skipReplayedThisRun = "already replayed this run"
	skipSucceededSince  = "succeeded since it failed"
	skipReplayPending   = "replayed already, its result is pending"
	skipNotStored       = "request no longer stored"
	skipNoSequence      = "failure result names no request"
)

const replaySynopsis = `replay --failed [--kind K1,K2] [--alert ID] [--since D] [--until D] [flags]
       alert-domains replay --from-seq N [--to-seq M] [flags]
       alert-domains replay --since D [--until D] [flags]

Sends requests through the service again: the original request of each
matching failure result (--failed), or the stored request messages in a
range of REQUEST_STREAM. Each goes to REQUEST_SUBJECT with its original body
and headers (without the Nats-* headers the server interprets) and the header
Replay-Of: <original stream sequence>; each original at most once per run.
replay never deletes anything.

With --failed, a failure is skipped when its alert has a success result
stored after it, or when a replay of its request was stored after it and has
no result yet: running the same replay twice republishes nothing new.

--since and --until take a duration back from now (2h) or an RFC 3339 time.`

// replayOptions are the parsed flags of a replay run.
type replayOptions struct {
	failed         bool
	kinds          map[connector.Kind]bool
	alert          string
	since, until   time.Time
	fromSeq, toSeq uint64
	dryRun         bool
	rate           float64
}

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
	logger := newLogger(cfg, e)
	nc, err := broker.Connect(ctx, cfg, clientURL(cfg), "alert-domains replay", logger)
	if err != nil {
		return configError(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(replayWindow))
	if err != nil {
		return err
	}
	r := &replayer{
		cfg:  cfg,
		js:   js,
		opts: opts,
		out:  e.stdout,
		prog: newProgress(e.stdout, e.stderr),
	}
	return r.run(ctx)
}

// replayFlagValues are the flags of replay as given.
type replayFlagValues struct {
	failed, dryRun *bool
	kinds, alert   *string
	since, until   *string
	fromSeq, toSeq *uint64
	perSecond      *float64
}

func defineReplayFlags(fs *flag.FlagSet) *replayFlagValues {
	return &replayFlagValues{
		failed:    fs.Bool("failed", false, "replay the requests of failure results"),
		kinds:     fs.String("kind", "", "with --failed: only these failure kinds, comma separated (unavailable,throttled,...)"),
		alert:     fs.String("alert", "", "with --failed: only failures of this alert ID"),
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
func (v *replayFlagValues) options(fs *flag.FlagSet, now time.Time) (*replayOptions, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	failed, kinds, alert, since, until := *v.failed, *v.kinds, *v.alert, *v.since, *v.until
	fromSeq, toSeq, perSecond := *v.fromSeq, *v.toSeq, *v.perSecond
	o := &replayOptions{failed: failed, alert: alert, fromSeq: fromSeq, toSeq: toSeq, dryRun: *v.dryRun, rate: perSecond}
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
	}
	if kinds != "" {
		o.kinds = make(map[connector.Kind]bool)
		for k := range strings.SplitSeq(kinds, ",") {
			kind := connector.Kind(strings.TrimSpace(k))
			if !slices.Contains(failureKinds, kind) {
				return nil, usageErrorf("replay: --kind: %q is not a failure kind (%s)", k, kindList())
			}
			o.kinds[kind] = true
		}
	}
	if alert != "" {
		if err := connector.ValidateAlertID(alert); err != nil {
			return nil, usageErrorf("replay: --alert: %v", err)
		}
	}
	var err error
	if since != "" {
		if o.since, err = parseWhen(since, now); err != nil {
			return nil, usageErrorf("replay: --since: %v", err)
		}
	}
	if until != "" {
		if o.until, err = parseWhen(until, now); err != nil {
			return nil, usageErrorf("replay: --until: %v", err)
		}
		if !o.since.IsZero() && !o.until.After(o.since) {
			return nil, usageErrorf("replay: --until must be after --since")
		}
	}
	return o, nil
}

// failureKinds are the error kinds of the contract.
var failureKinds = []connector.Kind{
	connector.KindInvalidRequest, connector.KindBadRequest, connector.KindUnauthorized, connector.KindForbidden,
	connector.KindNotFound, connector.KindThrottled, connector.KindUnavailable, connector.KindBadResponse,
}

func kindList() string {
	names := make([]string, len(failureKinds))
	for i, k := range failureKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// parseWhen reads a point in time: a Go duration back from now ("2h",
// "30m") or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: the duration back from now must be more than 0", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration back from now (2h, 30m) nor an RFC 3339 time (2026-11-27T09:00:00Z)", s)
	}
	return t, nil
}

// replayItem is one candidate of a run, in the order found.
type replayItem struct {
	seq     uint64 // the stored request to republish
	alt     uint64 // tried when seq is no longer stored: the replayed request a failure was for
	alertID string
	detail  string // what selected it, for its line
	skip    string // why it is not republished, when planning decided so
}

// replaySummary counts the outcomes of a run.
type replaySummary struct {
	found       int
	filtered    int
	republished int
	failed      int
	skipped     map[string]int
}

// replayer runs one replay.
type replayer struct {
	cfg  *config.Config
	js   jetstream.JetStream
	opts *replayOptions
	out  io.Writer
	prog *progress
	sum  replaySummary
}

func (r *replayer) run(ctx context.Context) error {
	r.sum.skipped = make(map[string]int)
	var items []replayItem
	var err error
	if r.opts.failed {
		items, err = r.planFailed(ctx)
	} else {
		items, err = r.planStored(ctx)
	}
	if err != nil {
		return err
	}
	r.sum.found = len(items)
	err = r.republish(ctx, items)
	r.prog.finish()
	r.printSummary()
	if err != nil {
		return err
	}
	if r.sum.failed > 0 {
		return errSomeFailed
	}
	return nil
}

// failureRef is a failure result that matched the selection.
type failureRef struct {
	resultSeq uint64
	at        time.Time
	orig      uint64 // the first request of the chain of replays
	own       uint64 // the request the result is for
	alertID   string
	kind      connector.Kind
}

// planFailed selects the matching failure results and decides for each one
// whether its original request is republished.
func (r *replayer) planFailed(ctx context.Context) ([]replayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.FailureSubject}}
	if !r.opts.since.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.since
	}
	var failures []failureRef
	err := scanStream(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !r.opts.until.IsZero() && meta.Timestamp.After(r.opts.until) {
			return false, nil
		}
		var res handlers.Result
		if err := json.Unmarshal(msg.Data(), &res); err != nil || res.Error == nil {
			r.sum.filtered++
			return true, nil
		}
		if (r.opts.kinds != nil && !r.opts.kinds[res.Error.Kind]) || (r.opts.alert != "" && res.AlertID != r.opts.alert) {
			r.sum.filtered++
			return true, nil
		}
		orig := res.RequestSequence
		if res.ReplayOf != 0 {
			orig = res.ReplayOf
		}
		failures = append(failures, failureRef{
			resultSeq: meta.Sequence.Stream, at: meta.Timestamp,
			orig: orig, own: res.RequestSequence, alertID: res.AlertID, kind: res.Error.Kind,
		})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read failure results: %w", err)
	}
	if len(failures) == 0 {
		return nil, nil
	}
	from := failures[0].at
	succeeded, err := r.lastSuccesses(ctx, from)
	if err != nil {
		return nil, err
	}
	replayed, err := r.lastReplays(ctx, from)
	if err != nil {
		return nil, err
	}
	return planFailures(failures, succeeded, replayed), nil
}

// planFailures decides what happens to each failure, given the stream
// sequence of the last success result of each alert and the time of the
// last replay of each request.
func planFailures(failures []failureRef, succeeded map[string]uint64, replayed map[uint64]time.Time) []replayItem {
	latest := make(map[uint64]failureRef)
	for _, f := range failures {
		latest[f.orig] = f // failures are in stream order
	}
	decided := make(map[uint64]string)
	items := make([]replayItem, 0, len(failures))
	for _, f := range failures {
		it := replayItem{seq: f.orig, alertID: f.alertID, detail: "failure " + string(f.kind)}
		if f.own != f.orig {
			it.alt = f.own
		}
		last := latest[f.orig]
		if prev, ok := decided[f.orig]; ok {
			it.skip = prev
			if prev == "" {
				it.skip = skipReplayedThisRun
			}
			items = append(items, it)
			continue
		}
		switch {
		case f.orig == 0:
			it.skip = skipNoSequence
		case f.alertID != "" && succeeded[f.alertID] > last.resultSeq:
			it.skip = skipSucceededSince
		case replayed[f.orig].After(last.at) || (f.own != 0 && replayed[f.own].After(last.at)):
			it.skip = skipReplayPending
		}
		decided[f.orig] = it.skip
		items = append(items, it)
	}
	return items
}

// lastSuccesses reads the success results stored since from: the stream
// sequence of the last one of each alert.
func (r *replayer) lastSuccesses(ctx context.Context, from time.Time) (map[string]uint64, error) {
	last := make(map[string]uint64)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.cfg.SuccessSubject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
	}
	err := scanStream(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if id := msg.Headers().Get(handlers.HeaderAlertID); id != "" {
			last[id] = meta.Sequence.Stream
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read success results: %w", err)
	}
	return last, nil
}

// lastReplays reads the requests stored since from: when each original was
// last replayed.
func (r *replayer) lastReplays(ctx context.Context, from time.Time) (map[uint64]time.Time, error) {
	last := make(map[uint64]time.Time)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.cfg.RequestSubject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
	}
	err := scanStream(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if seq, err := strconv.ParseUint(msg.Headers().Get(handlers.HeaderReplayOf), 10, 64); err == nil {
			last[seq] = meta.Timestamp
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return last, nil
}

// planStored selects the stored request messages in the range.
func (r *replayer) planStored(ctx context.Context) ([]replayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.RequestSubject}, HeadersOnly: true}
	if r.opts.fromSeq > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.opts.fromSeq
	} else {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.since
	}
	var items []replayItem
	err := scanStream(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if r.opts.toSeq > 0 && meta.Sequence.Stream > r.opts.toSeq {
			return false, nil
		}
		if !r.opts.until.IsZero() && meta.Timestamp.After(r.opts.until) {
			return false, nil
		}
		items = append(items, replayItem{seq: meta.Sequence.Stream, detail: "stored " + meta.Timestamp.UTC().Format(time.RFC3339)})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return items, nil
}

// pendingPublish is a republished request waiting for its acknowledgement.
type pendingPublish struct {
	item replayItem
	fut  jetstream.PubAckFuture
}

// republish fetches and republishes the items in order, paced, with at most
// replayWindow acknowledgements outstanding, and prints a line for each.
func (r *replayer) republish(ctx context.Context, items []replayItem) error {
	stream, err := r.js.Stream(ctx, r.cfg.RequestStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.RequestStream, err)
	}
	r.prog.start(len(items), r.opts.dryRun)
	burst := max(1, min(replayWindow, int(r.opts.rate/10)))
	pace := rate.NewLimiter(rate.Limit(r.opts.rate), burst)
	var queue []pendingPublish
	settle := func(block bool) error {
		for len(queue) > 0 {
			p := queue[0]
			if block {
				select {
				case ack := <-p.fut.Ok():
					r.published(p.item, ack, nil)
				case err := <-p.fut.Err():
					r.published(p.item, nil, err)
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				select {
				case ack := <-p.fut.Ok():
					r.published(p.item, ack, nil)
				case err := <-p.fut.Err():
					r.published(p.item, nil, err)
				default:
					return nil
				}
			}
			queue = queue[1:]
		}
		return nil
	}
	defer func() {
		// Whatever stopped the run, account for what was sent: the
		// acknowledgements get a moment even after an interruption.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, p := range queue {
			select {
			case ack := <-p.fut.Ok():
				r.published(p.item, ack, nil)
			case err := <-p.fut.Err():
				r.published(p.item, nil, err)
			case <-wctx.Done():
				r.published(p.item, nil, errors.New("no acknowledgement before the run ended"))
			}
		}
	}()

	seen := make(map[uint64]bool)
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay interrupted: %w", err)
		}
		if it.skip == "" && seen[it.seq] {
			it.skip = skipReplayedThisRun
		}
		if it.skip != "" {
			r.skipped(it, it.skip)
			continue
		}
		seen[it.seq] = true
		raw, err := r.stored(ctx, stream, &it)
		if err != nil {
			return err
		}
		if raw == nil {
			r.skipped(it, skipNotStored)
			continue
		}
		if r.opts.dryRun {
			r.line("would republish", it, "")
			r.sum.republished++
			r.prog.step()
			continue
		}
		if err := pace.Wait(ctx); err != nil {
			return fmt.Errorf("replay interrupted: %w", err)
		}
		if len(queue) >= replayWindow {
			if err := settle(true); err != nil {
				return fmt.Errorf("replay interrupted: %w", err)
			}
		}
		fut, err := r.js.PublishMsgAsync(replayMessage(raw, r.cfg.RequestSubject))
		if err != nil {
			r.published(it, nil, err)
			continue
		}
		queue = append(queue, pendingPublish{item: it, fut: fut})
		if err := settle(false); err != nil {
			return err
		}
	}
	if err := settle(true); err != nil {
		return fmt.Errorf("replay interrupted: %w", err)
	}
	return nil
}

// stored reads the request of it from the stream, or its alternative; nil
// when neither is stored any longer. It fills in the alert ID.
func (r *replayer) stored(ctx context.Context, stream jetstream.Stream, it *replayItem) (*jetstream.RawStreamMsg, error) {
	for _, seq := range []uint64{it.seq, it.alt} {
		if seq == 0 {
			continue
		}
		raw, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read request %d: %w", seq, err)
		}
		if raw.Subject != r.cfg.RequestSubject {
			continue
		}
		it.seq = seq
		if it.alertID == "" {
			req, _ := handlers.Decode(raw.Data, raw.Header)
			it.alertID = req.AlertID
		}
		return raw, nil
	}
	return nil, nil
}

// replayMessage is the republished copy of a stored request: the same body
// and headers, without the Nats-* headers the server acts on (Nats-Msg-Id
// would make the stream drop it as a duplicate; expectations and roll-ups
// would refuse it or purge), with Replay-Of naming the original.
func replayMessage(raw *jetstream.RawStreamMsg, subject string) *nats.Msg {
	h := nats.Header{}
	for k, v := range raw.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") || strings.EqualFold(k, handlers.HeaderReplayOf) {
			continue
		}
		h[k] = slices.Clone(v)
	}
	h.Set(handlers.HeaderReplayOf, strconv.FormatUint(raw.Sequence, 10))
	return &nats.Msg{Subject: subject, Header: h, Data: raw.Data}
}

func (r *replayer) published(it replayItem, ack *jetstream.PubAck, err error) {
	if err != nil {
		r.sum.failed++
		r.line("failed", it, err.Error())
	} else {
		r.sum.republished++
		r.line("republished", it, fmt.Sprintf("as %d", ack.Sequence))
	}
	r.prog.step()
}

func (r *replayer) skipped(it replayItem, why string) {
	r.sum.skipped[why]++
	r.line("skipped", it, why)
	r.prog.step()
}

// line prints one candidate: what happened, the original's sequence, the
// alert and the detail.
func (r *replayer) line(what string, it replayItem, note string) {
	alert := it.alertID
	if alert == "" {
		alert = "-"
	}
	detail := it.detail
	if note != "" {
		detail = note + "; " + detail
	}
	r.prog.println(r.out, fmt.Sprintf("%-15s  %8d  %-32s  %s", what, it.seq, alert, detail))
}

func (r *replayer) printSummary() {
	s := &r.sum
	what := "stored requests"
	if r.opts.failed {
		what = "failure results"
	}
	line := fmt.Sprintf("found %d %s", s.found, what)
	if s.filtered > 0 {
		line += fmt.Sprintf(" (%d more in the time range did not match --kind/--alert)", s.filtered)
	}
	verb := "republished"
	if r.opts.dryRun {
		verb = "would republish"
	}
	skipped := 0
	reasons := make([]string, 0, len(s.skipped))
	for why, n := range s.skipped {
		skipped += n
		reasons = append(reasons, fmt.Sprintf("%d %s", n, why))
	}
	slices.Sort(reasons)
	line += fmt.Sprintf("; %s %d, skipped %d", verb, s.republished, skipped)
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, ", ") + ")"
	}
	if s.failed > 0 {
		line += fmt.Sprintf(", failed %d", s.failed)
	}
	if r.opts.dryRun {
		line += "; dry run: nothing was published"
	}
	r.prog.println(r.out, line)
}

// scanStream calls fn with each message of stream that occ selects, oldest
// first, up to the last message stored when the scan starts (so messages a
// run publishes itself are never read back). fn returns false to stop.
func scanStream(ctx context.Context, js jetstream.JetStream, name string, occ jetstream.OrderedConsumerConfig, fn func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error)) error {
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	state := stream.CachedInfo().State
	if state.Msgs == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return err
	}
	defer it.Stop()
	info, err := cons.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumPending == 0 && info.Delivered.Consumer == 0 {
		return nil
	}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Stream > state.LastSeq {
			return nil
		}
		more, err := fn(msg, meta)
		if err != nil || !more {
			return err
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= state.LastSeq {
			return nil
		}
	}
}

// progress shows how far a long run is, on a terminal: a line on stderr
// redrawn at most ten times a second, cleared before each line of output
// when stdout is the same terminal.
type progress struct {
	mu      sync.Mutex
	w       io.Writer // nil: no progress shown
	clear   bool
	total   int
	done    int
	verb    string
	drawn   bool
	lastDrw time.Time
}

func newProgress(stdout, stderr io.Writer) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{w: stderr, clear: isTerminal(stdout)}
}

func (p *progress) start(total int, dryRun bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.verb = total, "replaying"
	if dryRun {
		p.verb = "checking"
	}
}

func (p *progress) step() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.w == nil || time.Since(p.lastDrw) < 100*time.Millisecond {
		return
	}
	p.lastDrw = time.Now()
	fmt.Fprintf(p.w, "\r\x1b[K%s %d/%d", p.verb, p.done, p.total)
	p.drawn = true
}

// println writes a line of output, keeping the progress line out of it.
func (p *progress) println(w io.Writer, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn && p.clear {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(w, line)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}
