package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/message"
)

// ReplayWindow bounds the republished requests waiting for the stream's
// acknowledgement: the JetStream context a Replay publishes with must
// allow as many asynchronous publishes pending.
const ReplayWindow = 256

// Why a replay candidate is not republished.
const (
	SkipReplayedThisRun = "already replayed this run"
	SkipSucceededSince  = "succeeded since it failed"
	SkipReplayPending   = "replayed already, its result is pending"
	SkipNotStored       = "request no longer stored"
	SkipReplayFailed    = "replayed already, the replay failed on its own"
	// Two runs at once: the stream kept the other run's copy.
	SkipReplayedConcurrently = "replayed by another run at the same time"
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
	Alert          string                // with Failed: only failures of this alert
	Tenant         string                // only this tenant's requests; "" for every one
	Since, Until   time.Time             // stored (results with Failed) in this span; zero: open
	FromSeq, ToSeq uint64                // stored requests in this range of sequences
	DryRun         bool                  // decide and report, publish nothing
	Rate           float64               // republished requests per second at most
	DefaultKinds   bool                  // Kinds are the default (replayableKinds), not given
	// TracerProvider and Propagator give each copy a span linked to its
	// original's trace, whose context the copy carries (see replayTrace);
	// nil: copies keep their original's.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// selects reports whether a failure of kind k is replayed.
func (o *ReplayOptions) selects(k message.Kind) bool {
	return o.Kinds == nil || o.Kinds[k]
}

// ReplayItem is one candidate of a run, in the order found.
type ReplayItem struct {
	seq     uint64 // the stored request to republish
	answers uint64 // with --failed: the stream sequence of the failure result it answers
	alertID string
	detail  string // what selected it, for its line
	skip    string // why it is not republished, when planning decided so
	root    uint64 // the original request of the chain, once read (Replay-Of)
	msgID   string // the Nats-Msg-Id of its republished copy, once built
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
	Found       int            // candidates planned
	Filtered    int            // read but not selected
	Republished int            // with DryRun: would be republished
	Failed      int            // could not be republished
	Skipped     map[string]int // by reason
	// Ignored counts the messages on a result subject that the service did
	// not write: never a reason to republish, nor not to.
	Ignored int
}

// Replay is one run of replay: Plan, then Republish.
type Replay struct {
	cfg    *config.Config
	js     jetstream.JetStream
	opts   ReplayOptions
	sum    ReplaySummary
	report func(ReplayEvent)

	requests jetstream.Stream // REQUEST_STREAM, read at the start of the run
	// identity tells this REQUEST_STREAM from an earlier one of the same
	// name: its creation time. Sequences start again at 1 in a re-created
	// stream; message IDs that name a sequence name the stream too.
	identity string
	// genuine caches, by stream sequence, whether a stored request is a copy
	// that replay published.
	genuine  map[uint64]replayCopy
	believer *believer
	trace    replayTrace
}

// NewReplay starts a run on cfg's streams.
func NewReplay(ctx context.Context, js jetstream.JetStream, cfg *config.Config, opts ReplayOptions) (*Replay, error) {
	stream, err := js.Stream(ctx, cfg.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	b, err := newBeliever(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	return &Replay{
		believer: b,
		cfg:      cfg, js: js, opts: opts,
		sum:      ReplaySummary{Skipped: make(map[string]int)},
		requests: stream,
		identity: strconv.FormatInt(stream.CachedInfo().Created.UnixNano(), 36),
		genuine:  make(map[uint64]replayCopy),
		trace:    newReplayTrace(opts, cfg.RequestSubject),
	}, nil
}

// Summary counts what the run found and did so far.
func (r *Replay) Summary() ReplaySummary {
	s := r.sum
	s.Ignored += r.believer.Ignored
	return s
}

// Plan finds the candidates: with Failed, the requests of the matching
// failure results, each marked when it is not to be republished; else the
// stored requests in the range.
func (r *Replay) Plan(ctx context.Context) ([]ReplayItem, error) {
	var items []ReplayItem
	var err error
	if r.opts.Failed {
		items, err = r.planFailed(ctx)
	} else {
		items, err = r.planStored(ctx)
	}
	if err != nil {
		return nil, err
	}
	r.sum.Found = len(items)
	return items, nil
}

// pendingPublish is a republished request waiting for its acknowledgement.
type pendingPublish struct {
	item ReplayItem
	msg  *nats.Msg
	fut  jetstream.PubAckFuture
	span trace.Span // ended once the outcome is known
}

// Republish fetches and republishes the items in order, paced, with at most
// ReplayWindow acknowledgements outstanding, and calls report for each
// once its outcome is known: a skipped one at once, a copy once the stream
// acknowledged it (or refused it).
func (r *Replay) Republish(ctx context.Context, items []ReplayItem, report func(ReplayEvent)) error {
	r.report = report
	lastSeq := r.requests.CachedInfo().State.LastSeq
	burst := max(1, min(ReplayWindow, int(r.opts.Rate/10)))
	pace := rate.NewLimiter(rate.Limit(r.opts.Rate), burst)
	var queue []pendingPublish
	// settle accounts for the acknowledgements at the head of the queue:
	// those already there, or (block) all of them, waiting.
	settle := func(block bool) error {
		for len(queue) > 0 {
			ack, ok, err := ackOf(queue[0], block, ctx.Done())
			if !ok && block {
				return ctx.Err()
			}
			if !ok {
				return nil
			}
			r.published(ctx, queue[0], ack, err)
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
			ack, ok, err := ackOf(p, true, wctx.Done())
			if !ok {
				err = errors.New("no acknowledgement before the run ended")
			}
			r.published(wctx, p, ack, err)
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
			r.skipped(it, SkipNotStored)
			continue
		}
		if err := r.resolve(ctx, &it, raw, lastSeq); err != nil {
			return err
		}
		// Each original once per run: with --failed, the original of its
		// chain; for a range, each stored message.
		key := it.seq
		if r.opts.Failed {
			key = it.root
		}
		if seen[key] {
			r.skipped(it, SkipReplayedThisRun)
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
		if len(queue) >= ReplayWindow {
			if err := settle(true); err != nil {
				return fmt.Errorf("replay interrupted: %w", err)
			}
		}
		// The copy goes to the subject of the original, so that it keeps
		// the tenant its subject names.
		msg := replayMessage(raw, raw.Subject, it.root, it.msgID)
		p := pendingPublish{item: it, msg: msg, span: r.trace.start(ctx, raw, msg, it.root)}
		if p.fut, err = r.js.PublishMsgAsync(msg); err != nil {
			r.published(ctx, p, nil, err)
			continue
		}
		queue = append(queue, p)
		if err := settle(false); err != nil {
			return err
		}
	}
	if err := settle(true); err != nil {
		return fmt.Errorf("replay interrupted: %w", err)
	}
	return nil
}

// ackOf takes the outcome of p's publish, the acknowledgement or the
// error: at once when it is there, else (block) once it comes, unless stop
// is closed first. ok is false when there was none.
func ackOf(p pendingPublish, block bool, stop <-chan struct{}) (ack *jetstream.PubAck, ok bool, err error) {
	if !block {
		select {
		case ack := <-p.fut.Ok():
			return ack, true, nil
		case err := <-p.fut.Err():
			return nil, true, err
		default:
			return nil, false, nil
		}
	}
	select {
	case ack := <-p.fut.Ok():
		return ack, true, nil
	case err := <-p.fut.Err():
		return nil, true, err
	case <-stop:
		return nil, false, nil
	}
}

// resolve finds the original of it's chain (it itself, unless it is a copy
// replay published) and the message ID of its copy.
func (r *Replay) resolve(ctx context.Context, it *ReplayItem, raw *jetstream.RawStreamMsg, lastSeq uint64) error {
	if it.alertID == "" {
		req, _ := message.Decode(raw.Data, raw.Header)
		it.alertID = req.AlertID
	}
	it.root = it.seq
	if r.opts.Failed {
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

// published accounts for the acknowledgement of a republished copy. A copy
// the stream dropped as a duplicate was published by another run at the
// same time, when the stored message is a genuine copy; when it is not (a
// publisher took the ID first), the copy is published again under an ID of
// this run.
func (r *Replay) published(ctx context.Context, p pendingPublish, ack *jetstream.PubAck, err error) {
	defer func() { endCopy(p.span, err) }()
	it := p.item
	if err == nil && ack.Duplicate {
		c, cerr := r.copyOf(ctx, ack.Sequence)
		switch {
		case cerr != nil:
			err = cerr
		case c.ok:
			r.skipped(it, SkipReplayedConcurrently)
			return
		default:
			p.msg.Header.Set(message.HeaderMsgID, it.msgID+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
			ack, err = r.js.PublishMsg(ctx, p.msg)
		}
	}
	if err != nil {
		r.sum.Failed++
		r.event(Failed, it, err.Error())
	} else {
		r.sum.Republished++
		r.event(Republished, it, fmt.Sprintf("as %d", ack.Sequence))
	}
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

// requestSubjects are the request subjects in both forms: plain and
// per tenant.
func (r *Replay) requestSubjects() []string {
	return []string{r.cfg.RequestSubject, broker.TenantSubject(r.cfg.RequestSubject)}
}

// requestTenant is the tenant a stored request names: the token of its
// per-tenant subject, else its body's tenant field ("" for none).
func (r *Replay) requestTenant(subject string, data []byte, h nats.Header) string {
	if name, ok := strings.CutPrefix(subject, r.cfg.RequestSubject+"."); ok {
		return name
	}
	req, _ := message.Decode(data, h)
	return req.Tenant
}
