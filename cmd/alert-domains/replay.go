package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
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
	"github.com/alert-domains/alert-domains/message"
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
	skipReplayFailed    = "replayed already, the replay failed on its own"
	// Two runs at once: the stream kept the other run's copy.
	skipReplayedConcurrently = "replayed by another run at the same time"
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

// replayOptions are the parsed flags of a replay run.
type replayOptions struct {
	failed         bool
	kinds          map[message.Kind]bool
	alert          string
	tenant         string // only this tenant's requests; "" for every one
	since, until   time.Time
	fromSeq, toSeq uint64
	dryRun         bool
	rate           float64
	defaultKinds   bool // --kind not given: the kinds a replay can fix
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
func (v *replayFlagValues) options(fs *flag.FlagSet, now time.Time) (*replayOptions, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	failed, kinds, alert, since, until := *v.failed, *v.kinds, *v.alert, *v.since, *v.until
	fromSeq, toSeq, perSecond := *v.fromSeq, *v.toSeq, *v.perSecond
	o := &replayOptions{failed: failed, alert: alert, tenant: *v.tenant, fromSeq: fromSeq, toSeq: toSeq, dryRun: *v.dryRun, rate: perSecond}
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
	case set["tenant"] && !config.ValidTenantName(o.tenant):
		return nil, usageErrorf("replay: --tenant: %q is not a tenant name ([a-z0-9][a-z0-9-]{0,62})", o.tenant)
	}
	switch strings.TrimSpace(kinds) {
	case "all":
		// Every kind: o.kinds stays nil.
	case "":
		o.defaultKinds = true
		o.kinds = make(map[message.Kind]bool)
		for _, k := range replayableKinds {
			o.kinds[k] = true
		}
	default:
		o.kinds = make(map[message.Kind]bool)
		for k := range strings.SplitSeq(kinds, ",") {
			kind := message.Kind(strings.TrimSpace(k))
			if !slices.Contains(failureKinds, kind) {
				return nil, usageErrorf("replay: --kind: %q is not a failure kind (%s, or all)", k, kindList())
			}
			o.kinds[kind] = true
		}
	}
	if alert != "" {
		if err := message.ValidateAlertID(alert); err != nil {
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
var failureKinds = []message.Kind{
	message.KindInvalidRequest, message.KindBadRequest, message.KindUnauthorized, message.KindForbidden,
	message.KindNotFound, message.KindThrottled, message.KindUnavailable, message.KindBadResponse,
	message.KindUnknownTenant,
}

// replayableKinds are what replay --failed takes without --kind: the kinds
// a replay can fix (an outage ended, a credential or permission or tenant
// was fixed). not_found, invalid_request, bad_request and bad_response
// would fail the same way again, each spending a Defender call.
var replayableKinds = []message.Kind{
	message.KindUnavailable, message.KindThrottled, message.KindUnauthorized, message.KindForbidden,
	message.KindUnknownTenant,
}

// selects reports whether a failure of kind k is replayed.
func (o *replayOptions) selects(k message.Kind) bool {
	return o.kinds == nil || o.kinds[k]
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
	seq      uint64 // the stored request to republish
	answers  uint64 // with --failed: the stream sequence of the failure result it answers
	alertID  string
	detail   string // what selected it, for its line
	skip     string // why it is not republished, when planning decided so
	root     uint64 // the original request of the chain, once read (Replay-Of)
	msgID    string // the Nats-Msg-Id of its republished copy, once built
	resolved bool   // root and msgID are set
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

	requests jetstream.Stream // REQUEST_STREAM, read at the start of the run
	// identity tells this REQUEST_STREAM from an earlier one of the same
	// name: its creation time. Sequences start again at 1 in a re-created
	// stream; message IDs that name a sequence name the stream too.
	identity string
	// genuine caches, by stream sequence, whether a stored request is a copy
	// that replay published.
	genuine map[uint64]replayCopy
}

func (r *replayer) run(ctx context.Context) error {
	r.sum.skipped = make(map[string]int)
	r.genuine = make(map[uint64]replayCopy)
	stream, err := r.js.Stream(ctx, r.cfg.RequestStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.RequestStream, err)
	}
	r.requests = stream
	r.identity = strconv.FormatInt(stream.CachedInfo().Created.UnixNano(), 36)
	var items []replayItem
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
	own       uint64 // the request the result is for
	alertID   string
	tenant    string
	kind      message.Kind
}

// successKey names an alert of a tenant among the success results: a
// success for one tenant says nothing of another's failure.
func successKey(tenant, alertID string) string {
	if tenant == "" {
		return alertID
	}
	return tenant + "/" + alertID
}

// requestSubjects are the request subjects in both forms: plain and
// per tenant.
func (r *replayer) requestSubjects() []string {
	return []string{r.cfg.RequestSubject, broker.TenantSubject(r.cfg.RequestSubject)}
}

// planFailed selects the matching failure results and decides for each one
// whether its request is republished.
func (r *replayer) planFailed(ctx context.Context) ([]replayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.FailureSubject, broker.TenantSubject(r.cfg.FailureSubject)}}
	if r.opts.tenant != "" {
		// Another tenant's failures are on its own subject: never read.
		occ.FilterSubjects[1] = r.cfg.FailureSubject + "." + r.opts.tenant
	}
	if !r.opts.since.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.since
	}
	var failures []failureRef
	err := scanStream(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !r.opts.until.IsZero() && meta.Timestamp.After(r.opts.until) {
			return false, nil
		}
		var res message.Result
		if err := json.Unmarshal(msg.Data(), &res); err != nil || res.Error == nil {
			r.sum.filtered++
			return true, nil
		}
		if !r.opts.selects(res.Error.Kind) || (r.opts.alert != "" && res.AlertID != r.opts.alert) ||
			(r.opts.tenant != "" && res.Tenant != "" && res.Tenant != r.opts.tenant) {
			r.sum.filtered++
			return true, nil
		}
		// The result's replayOf is not read: it copies a header any
		// publisher can set. What replay published is told apart by
		// content (see copyOf).
		failures = append(failures, failureRef{
			resultSeq: meta.Sequence.Stream, at: meta.Timestamp,
			own: res.RequestSequence, alertID: res.AlertID, tenant: res.Tenant, kind: res.Error.Kind,
		})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read failure results: %w", err)
	}
	if failures, err = r.tenantFailures(ctx, failures); err != nil {
		return nil, err
	}
	if len(failures) == 0 {
		return nil, nil
	}
	from := failures[0].at
	succeeded, err := r.lastSuccesses(ctx, from)
	if err != nil {
		return nil, err
	}
	copies, err := r.replayCopies(ctx, from)
	if err != nil {
		return nil, err
	}
	return planFailures(failures, succeeded, copies, func(seq uint64) (bool, error) {
		c, err := r.copyOf(ctx, seq)
		return c.ok, err
	})
}

// tenantFailures keeps, with --tenant, the failures of that tenant: those
// whose result names it, and those whose result names no tenant (the
// request could not be routed: unknown_tenant, invalid_request) when their
// stored request names it. A failure whose request is no longer stored
// cannot be told, and could not be replayed: it is left out.
func (r *replayer) tenantFailures(ctx context.Context, failures []failureRef) ([]failureRef, error) {
	if r.opts.tenant == "" {
		return failures, nil
	}
	kept := failures[:0]
	for _, f := range failures {
		if f.tenant == "" {
			raw, err := r.getRequest(ctx, f.own)
			if err != nil {
				return nil, err
			}
			if raw == nil || r.requestTenant(raw.Subject, raw.Data, raw.Header) != r.opts.tenant {
				r.sum.filtered++
				continue
			}
		}
		kept = append(kept, f)
	}
	return kept, nil
}

// requestTenant is the tenant a stored request names: the token of its
// per-tenant subject, else its body's tenant field ("" for none).
func (r *replayer) requestTenant(subject string, data []byte, h nats.Header) string {
	if name, ok := strings.CutPrefix(subject, r.cfg.RequestSubject+"."); ok {
		return name
	}
	req, _ := message.Decode(data, h)
	return req.Tenant
}

// planFailures decides what happens to each failure, given the stream
// sequence of the last success result of each alert, the requests that
// claim to be replay copies answering each failure result (by the failure's
// result sequence), and genuine, which tells whether a claimed copy is one
// that replay published.
func planFailures(failures []failureRef, succeeded map[string]uint64, copies map[uint64][]uint64, genuine func(seq uint64) (bool, error)) ([]replayItem, error) {
	failed := make(map[uint64]bool, len(failures)) // requests with a failure result
	for _, f := range failures {
		failed[f.own] = true
	}
	items := make([]replayItem, 0, len(failures))
	for _, f := range failures {
		it := replayItem{seq: f.own, answers: f.resultSeq, alertID: f.alertID, detail: "failure " + string(f.kind)}
		switch {
		case f.own == 0:
			it.skip = skipNoSequence
		case f.alertID != "" && succeeded[successKey(f.tenant, f.alertID)] > f.resultSeq:
			it.skip = skipSucceededSince
		default:
			for _, c := range copies[f.resultSeq] {
				ok, err := genuine(c)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				it.skip = skipReplayPending
				if failed[c] {
					it.skip = skipReplayFailed
				}
				break
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// lastSuccesses reads the success results stored since from: the stream
// sequence of the last one of each alert.
func (r *replayer) lastSuccesses(ctx context.Context, from time.Time) (map[string]uint64, error) {
	last := make(map[string]uint64)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.cfg.SuccessSubject, broker.TenantSubject(r.cfg.SuccessSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
	}
	err := scanStream(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if id := msg.Headers().Get(message.HeaderAlertID); id != "" {
			last[successKey(msg.Headers().Get(message.HeaderTenant), id)] = meta.Sequence.Stream
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read success results: %w", err)
	}
	return last, nil
}

// replayCopies reads the requests stored since from whose message ID says
// they are replay copies answering a failure result: the stream sequences
// of those copies by the failure's result sequence. They are claims only,
// checked by copyOf before they count.
func (r *replayer) replayCopies(ctx context.Context, from time.Time) (map[uint64][]uint64, error) {
	copies := make(map[uint64][]uint64)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: r.requestSubjects(),
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
	}
	err := scanStream(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		id, ok := parseReplayID(msg.Headers().Get(message.HeaderMsgID), r.identity)
		if ok && id.answers != 0 {
			copies[id.answers] = append(copies[id.answers], meta.Sequence.Stream)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return copies, nil
}

// replayID is what the message ID of a republished copy says: the stream
// identity, the stored request it copies (source), and the failure result
// it answers (--failed) or the last sequence of the stream when the run
// started (a range form). The same candidate of two runs at once gets the
// same ID, so the stream stores it once.
type replayID struct {
	source  uint64
	answers uint64
	rest    string
}

const replayIDPrefix = "replay-"

func (id replayID) String(identity string) string {
	s := replayIDPrefix + identity + "-" + strconv.FormatUint(id.source, 10) + "-"
	if id.answers != 0 {
		return s + "f" + strconv.FormatUint(id.answers, 10) + id.rest
	}
	return s + id.rest
}

// parseReplayID reads a message ID of a replay copy of the stream with
// identity; ok is false for any other ID.
func parseReplayID(s, identity string) (id replayID, ok bool) {
	rest, found := strings.CutPrefix(s, replayIDPrefix+identity+"-")
	if !found {
		return id, false
	}
	src, rest, found := strings.Cut(rest, "-")
	if !found {
		return id, false
	}
	n, err := strconv.ParseUint(src, 10, 64)
	if err != nil || n == 0 {
		return id, false
	}
	id.source = n
	if f, found := strings.CutPrefix(rest, "f"); found {
		num, tail, _ := strings.Cut(f, "-")
		if a, err := strconv.ParseUint(num, 10, 64); err == nil {
			id.answers = a
			if tail != "" {
				id.rest = "-" + tail
			}
			return id, true
		}
	}
	id.rest = rest
	return id, true
}

// replayCopy is what copyOf found out about a stored request.
type replayCopy struct {
	ok   bool   // a copy that replay published
	root uint64 // the original of its chain (its Replay-Of)
}

// copyOf tells whether the stored request at seq is a copy that replay
// published: its message ID has replay's form and names a source request,
// and it carries exactly the body and headers of that source on the same
// subject. A header alone (Replay-Of, or a forged message ID) proves
// nothing; a publisher who sends an exact copy of a stored request sends
// that request again, which is what a replay does.
func (r *replayer) copyOf(ctx context.Context, seq uint64) (replayCopy, error) {
	if c, ok := r.genuine[seq]; ok {
		return c, nil
	}
	c, err := r.checkCopy(ctx, seq)
	if err == nil {
		r.genuine[seq] = c
	}
	return c, err
}

func (r *replayer) checkCopy(ctx context.Context, seq uint64) (replayCopy, error) {
	msg, err := r.getRequest(ctx, seq)
	if msg == nil || err != nil {
		return replayCopy{}, err
	}
	id, ok := parseReplayID(msg.Header.Get(message.HeaderMsgID), r.identity)
	if !ok || id.source >= seq {
		return replayCopy{}, nil
	}
	src, err := r.getRequest(ctx, id.source)
	if src == nil || err != nil {
		return replayCopy{}, err
	}
	if msg.Subject != src.Subject || !bytes.Equal(msg.Data, src.Data) || !sameHeaders(msg.Header, src.Header) {
		return replayCopy{}, nil
	}
	root := id.source
	if n := message.ReplayOf(msg.Header); n > 0 && n <= id.source {
		root = n
	}
	return replayCopy{ok: true, root: root}, nil
}

// getRequest reads a stored request message; nil when it is no longer
// stored or is not on REQUEST_SUBJECT (or its per-tenant form).
func (r *replayer) getRequest(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	raw, err := r.requests.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read request %d: %w", seq, err)
	}
	name, perTenant := strings.CutPrefix(raw.Subject, r.cfg.RequestSubject+".")
	if raw.Subject != r.cfg.RequestSubject && (!perTenant || strings.Contains(name, ".")) {
		return nil, nil
	}
	return raw, nil
}

// sameHeaders compares the headers a replay copies (every header but the
// Nats-* ones and Replay-Of).
func sameHeaders(a, b nats.Header) bool {
	copied := func(h nats.Header) map[string]string {
		m := make(map[string]string, len(h))
		for k, v := range h {
			if !copiedHeader(k) {
				continue
			}
			m[http.CanonicalHeaderKey(k)] = strings.Join(v, "\x00")
		}
		return m
	}
	return maps.Equal(copied(a), copied(b))
}

// copiedHeader reports whether a replay copies the header k.
func copiedHeader(k string) bool {
	return !strings.HasPrefix(strings.ToLower(k), "nats-") && !strings.EqualFold(k, message.HeaderReplayOf)
}

// planStored selects the stored request messages in the range.
func (r *replayer) planStored(ctx context.Context) ([]replayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: r.requestSubjects(), HeadersOnly: true}
	if r.opts.tenant != "" {
		// The tenant's own subject, and the plain one, whose bodies may
		// name it: the bodies are read.
		occ.FilterSubjects = []string{r.cfg.RequestSubject, r.cfg.RequestSubject + "." + r.opts.tenant}
		occ.HeadersOnly = false
	}
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
		if r.opts.tenant != "" && r.requestTenant(msg.Subject(), msg.Data(), msg.Headers()) != r.opts.tenant {
			r.sum.filtered++
			return true, nil
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
	msg  *nats.Msg
	fut  jetstream.PubAckFuture
}

// republish fetches and republishes the items in order, paced, with at most
// replayWindow acknowledgements outstanding, and prints a line for each.
func (r *replayer) republish(ctx context.Context, items []replayItem) error {
	lastSeq := r.requests.CachedInfo().State.LastSeq
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
					r.published(ctx, p, ack, nil)
				case err := <-p.fut.Err():
					r.published(ctx, p, nil, err)
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				select {
				case ack := <-p.fut.Ok():
					r.published(ctx, p, ack, nil)
				case err := <-p.fut.Err():
					r.published(ctx, p, nil, err)
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
				r.published(wctx, p, ack, nil)
			case err := <-p.fut.Err():
				r.published(wctx, p, nil, err)
			case <-wctx.Done():
				r.published(wctx, p, nil, errors.New("no acknowledgement before the run ended"))
			}
		}
	}()

	seen := make(map[uint64]bool)
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay interrupted: %w", err)
		}
		if it.skip != "" {
			r.skipped(it, it.skip)
			continue
		}
		raw, err := r.getRequest(ctx, it.seq)
		if err != nil {
			return err
		}
		if raw == nil {
			r.skipped(it, skipNotStored)
			continue
		}
		if err := r.resolve(ctx, &it, raw, lastSeq); err != nil {
			return err
		}
		// Each original once per run: with --failed, the original of its
		// chain; for a range, each stored message.
		key := it.seq
		if r.opts.failed {
			key = it.root
		}
		if seen[key] {
			r.skipped(it, skipReplayedThisRun)
			continue
		}
		seen[key] = true
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
		// The copy goes to the subject of the original, so that it keeps
		// the tenant its subject names.
		msg := replayMessage(raw, raw.Subject, it.root, it.msgID)
		fut, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			r.published(ctx, pendingPublish{item: it, msg: msg}, nil, err)
			continue
		}
		queue = append(queue, pendingPublish{item: it, msg: msg, fut: fut})
		if err := settle(false); err != nil {
			return err
		}
	}
	if err := settle(true); err != nil {
		return fmt.Errorf("replay interrupted: %w", err)
	}
	return nil
}

// resolve finds the original of it's chain (it itself, unless it is a copy
// replay published) and the message ID of its copy.
func (r *replayer) resolve(ctx context.Context, it *replayItem, raw *jetstream.RawStreamMsg, lastSeq uint64) error {
	if it.alertID == "" {
		req, _ := message.Decode(raw.Data, raw.Header)
		it.alertID = req.AlertID
	}
	it.root = it.seq
	if r.opts.failed {
		c, err := r.copyOf(ctx, it.seq)
		if err != nil {
			return err
		}
		if c.ok {
			it.root = c.root
		}
	}
	id := replayID{source: it.seq, answers: it.answers}
	if it.answers == 0 {
		id.rest = "s" + strconv.FormatUint(lastSeq, 10)
	}
	it.msgID = id.String(r.identity)
	return nil
}

// replayMessage is the republished copy of a stored request: the same body
// and headers, without the Nats-* headers the server acts on (the
// publisher's Nats-Msg-Id would make the stream drop it as a duplicate;
// expectations and roll-ups would refuse it or purge), with Replay-Of naming
// the original and replay's own message ID.
func replayMessage(raw *jetstream.RawStreamMsg, subject string, root uint64, msgID string) *nats.Msg {
	h := nats.Header{}
	for k, v := range raw.Header {
		if copiedHeader(k) {
			h[k] = slices.Clone(v)
		}
	}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(root, 10))
	if msgID != "" {
		h.Set(message.HeaderMsgID, msgID)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: raw.Data}
}

// published accounts for the acknowledgement of a republished copy. A copy
// the stream dropped as a duplicate was published by another run at the
// same time, when the stored message is a genuine copy; when it is not (a
// publisher took the ID first), the copy is published again under an ID of
// this run.
func (r *replayer) published(ctx context.Context, p pendingPublish, ack *jetstream.PubAck, err error) {
	it := p.item
	if err == nil && ack.Duplicate {
		c, cerr := r.copyOf(ctx, ack.Sequence)
		switch {
		case cerr != nil:
			err = cerr
		case c.ok:
			r.skipped(it, skipReplayedConcurrently)
			return
		default:
			p.msg.Header.Set(message.HeaderMsgID, it.msgID+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
			ack, err = r.js.PublishMsg(ctx, p.msg)
		}
	}
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
	also := ""
	if r.opts.tenant != "" {
		also = "/--tenant"
	}
	switch {
	case s.filtered > 0 && !r.opts.failed:
		line += fmt.Sprintf(" (%d more in the range are requests of other tenants than --tenant)", s.filtered)
	case s.filtered > 0 && r.opts.defaultKinds:
		line += fmt.Sprintf(" (%d more in the time range are of kinds a replay cannot fix or did not match --alert%s; --kind all takes every kind)", s.filtered, also)
	case s.filtered > 0:
		line += fmt.Sprintf(" (%d more in the time range did not match --kind/--alert%s)", s.filtered, also)
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
