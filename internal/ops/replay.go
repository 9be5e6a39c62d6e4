package ops

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/message"
)

// Why a replay candidate is not republished.
const (
	SkipReplayedThisRun      = "already replayed this run"
	SkipSucceededSince       = "succeeded since it failed"
	SkipReplayPending        = "replayed already, its result is pending"
	SkipNotStored            = "request no longer stored"
	SkipReplayFailed         = "replayed already, the replay failed on its own"
	SkipReplayedConcurrently = "replayed by another run in the last 2 minutes"
)

// What happened to a candidate (ReplayEvent.What).
const (
	WouldRepublish = "would republish"
	Republished    = "republished"
	Skipped        = "skipped"
	Failed         = "failed"
)

// ReplayOptions select what a replay republishes.
type ReplayOptions struct {
	Failed         bool                  // the requests of failure results; else stored requests
	Kinds          map[message.Kind]bool // with Failed: these kinds; nil for every one
	DefaultKinds   bool                  // Kinds are the replayable ones, not given
	Alert          string                // with Failed: only failures of this alert
	Tenant         string                // only this tenant's requests; "" for every one
	Since, Until   time.Time             // stored (results with Failed) in this span; zero: open
	FromSeq, ToSeq uint64                // stored requests in this range of sequences
	DryRun         bool                  // decide and report, publish nothing
	Rate           float64               // republished requests per second at most
	TracerProvider trace.TracerProvider  // nil: copies keep their original's trace context
	Propagator     propagation.TextMapPropagator
}

// ReplayItem is one candidate of a run, in the order found.
type ReplayItem struct {
	seq     uint64 // the stored request to republish
	answers uint64 // with Failed: the stream sequence of the failure result it answers
	alertID string
	detail  string // what selected it
	skip    string // why it is not republished, when planning decided so
}

// ReplayEvent is what happened to one candidate.
type ReplayEvent struct {
	What    string // WouldRepublish, Republished, Skipped or Failed
	Seq     uint64 // the stored request it is about
	AlertID string // "" when not known
	Note    string // why it was skipped, the error, or where the copy went
	Detail  string // what selected it
}

// ReplaySummary counts the outcomes of a run.
type ReplaySummary struct {
	Found, Filtered int            // candidates planned; read but not selected
	Republished     int            // with DryRun: would be republished
	Failed          int            // could not be republished
	Skipped         map[string]int // by reason
	Ignored         int            // messages on result subjects the service did not write
}

// Replay is one run of replay: Plan, then Republish.
type Replay struct {
	cfg      *config.Config
	js       jetstream.JetStream
	opts     ReplayOptions
	sum      ReplaySummary
	report   func(ReplayEvent)
	identity string            // REQUEST_STREAM's creation time: tells it from a re-created one
	copies   map[uint64]uint64 // what copyRoot found, by stream sequence
	believer *Believer
	trace    replayTrace
}

// NewReplay starts a run on cfg's streams.
func NewReplay(ctx context.Context, js jetstream.JetStream, cfg *config.Config, opts ReplayOptions) (*Replay, error) {
	b, err := NewBeliever(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	return &Replay{cfg: cfg, js: js, opts: opts, sum: ReplaySummary{Skipped: map[string]int{}},
		identity: strconv.FormatInt(b.requests.CachedInfo().Created.UnixNano(), 36), copies: map[uint64]uint64{}, believer: b,
		trace: newReplayTrace(opts, cfg.RequestSubject)}, nil
}

// Summary counts what the run found and did so far.
func (r *Replay) Summary() ReplaySummary {
	s := r.sum
	s.Ignored += r.believer.Ignored
	return s
}

// Plan finds the candidates: the requests of the matching failures, or the
// stored requests in the range.
func (r *Replay) Plan(ctx context.Context) (items []ReplayItem, err error) {
	if r.opts.Failed {
		items, err = r.planFailed(ctx)
	} else {
		items, err = r.planStored(ctx)
	}
	r.sum.Found = len(items)
	return items, err
}

// Republish republishes the items in order, paced, each original at most
// once, and calls report with each outcome.
func (r *Replay) Republish(ctx context.Context, items []ReplayItem, report func(ReplayEvent)) error {
	r.report = report
	pace := rate.NewLimiter(rate.Limit(r.opts.Rate), max(1, min(256, int(r.opts.Rate/10))))
	seen := map[uint64]bool{}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay interrupted: %w", err)
		}
		raw, key, err := r.source(ctx, &it)
		if err != nil {
			return err
		}
		if it.skip == "" && seen[key] {
			it.skip = SkipReplayedThisRun
		}
		if it.skip != "" {
			r.skipped(it, it.skip)
			continue
		}
		seen[key] = true
		if r.opts.DryRun {
			r.sum.Republished++
			r.event(WouldRepublish, it, "")
			continue
		}
		if err := pace.Wait(ctx); err != nil {
			return fmt.Errorf("replay interrupted: %w", err)
		}
		msg := replayMessage(raw, key, replayID{source: it.seq, answers: it.answers}.String(r.identity))
		r.publish(ctx, it, msg, r.trace.start(ctx, raw, msg, key))
	}
	return nil
}

// source reads it's request, with the key that republishes each original
// (of a chain of copies) once per run; it.skip says why not, if so.
func (r *Replay) source(ctx context.Context, it *ReplayItem) (raw *jetstream.RawStreamMsg, key uint64, err error) {
	if it.skip != "" {
		return nil, 0, nil
	}
	if raw, err = r.getRequest(ctx, it.seq); err != nil || raw == nil {
		it.skip = SkipNotStored
		return nil, 0, err
	}
	if it.alertID == "" {
		req, _ := message.Decode(raw.Data, raw.Header)
		it.alertID = req.AlertID
	}
	if r.opts.Failed {
		key, err = r.copyRoot(ctx, it.seq)
	}
	return raw, cmp.Or(key, it.seq), err
}

// publish sends a copy and ends its span. A duplicate that is not a genuine
// copy (a publisher took the ID first) is sent again under a new ID.
func (r *Replay) publish(ctx context.Context, it ReplayItem, msg *nats.Msg, span trace.Span) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	defer span.End()
	ack, err := r.js.PublishMsg(pctx, msg)
	if err == nil && ack.Duplicate {
		root, cerr := r.copyRoot(pctx, ack.Sequence)
		switch {
		case cerr != nil:
			err = cerr
		case root != 0:
			r.skipped(it, SkipReplayedConcurrently)
			return
		default:
			msg.Header.Set(message.HeaderMsgID, msg.Header.Get(message.HeaderMsgID)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
			ack, err = r.js.PublishMsg(pctx, msg)
		}
	}
	if err != nil {
		span.SetStatus(codes.Error, "not republished")
		r.sum.Failed++
		r.event(Failed, it, err.Error())
		return
	}
	r.sum.Republished++
	r.event(Republished, it, fmt.Sprintf("as %d", ack.Sequence))
}

func (r *Replay) skipped(it ReplayItem, why string) {
	r.sum.Skipped[why]++
	r.event(Skipped, it, why)
}

func (r *Replay) event(what string, it ReplayItem, note string) {
	if r.report != nil {
		r.report(ReplayEvent{What: what, Seq: it.seq, AlertID: it.alertID, Note: note, Detail: it.detail})
	}
}

// requestTenant is the tenant a stored request's subject or body names.
func (r *Replay) requestTenant(subject string, data []byte, h nats.Header) string {
	if name, ok := strings.CutPrefix(subject, r.cfg.RequestSubject+"."); ok {
		return name
	}
	req, _ := message.Decode(data, h)
	return req.Tenant
}
