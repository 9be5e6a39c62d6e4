package ops

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// failureRef is a failure result that matched the selection.
type failureRef struct {
	resultSeq uint64
	at        time.Time
	own       uint64 // the request the result is for
	alertID   string
	tenant    string
	kind      message.Kind
}

// alertKey names an alert of a tenant among the success results.
type alertKey struct{ tenant, alertID string }

// planFailed selects the matching failures and decides which are republished.
func (r *Replay) planFailed(ctx context.Context) ([]ReplayItem, error) {
	failures, err := r.matchingFailures(ctx)
	if err != nil || len(failures) == 0 {
		return nil, err
	}
	succeeded, err := r.lastSuccesses(ctx, failures)
	if err != nil {
		return nil, err
	}
	copies, err := r.replayCopies(ctx, failures[0].at)
	if err != nil {
		return nil, err
	}
	return planFailures(failures, succeeded, copies, func(seq uint64) (bool, error) {
		root, err := r.copyRoot(ctx, seq)
		return root != 0, err
	})
}

// matchingFailures reads the believed failure results the options select.
func (r *Replay) matchingFailures(ctx context.Context) ([]failureRef, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.FailureSubject, r.cfg.FailureSubject + "." + cmp.Or(r.opts.Tenant, "*")}}
	if !r.opts.Since.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.Since
	}
	var failures []failureRef
	err := consumer.Scan(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !r.opts.Until.IsZero() && meta.Timestamp.After(r.opts.Until) {
			return false, nil
		}
		res, err := r.believer.Believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
		if err != nil || res == nil {
			return err == nil, err
		}
		if res.Error == nil {
			r.sum.Ignored++
			return true, nil
		}
		tenant, _ := r.believer.Subjects.Tenant(msg.Subject())
		selected, err := r.selects(ctx, res, tenant)
		if err != nil || !selected {
			r.sum.Filtered++
			return err == nil, err
		}
		failures = append(failures, failureRef{resultSeq: meta.Sequence.Stream, at: meta.Timestamp,
			own: res.RequestSequence, alertID: res.AlertID, tenant: tenant, kind: res.Error.Kind})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read failure results: %w", err)
	}
	return failures, nil
}

// selects reports whether the failure res, stored for tenant, matches the
// options; with --tenant, an unrouted one is its request's tenant's.
func (r *Replay) selects(ctx context.Context, res *message.Result, tenant string) (bool, error) {
	o := &r.opts
	if (o.Kinds != nil && !o.Kinds[res.Error.Kind]) || (o.Alert != "" && res.AlertID != o.Alert) {
		return false, nil
	}
	if o.Tenant == "" || tenant != "" {
		return o.Tenant == "" || tenant == o.Tenant, nil
	}
	if res.RequestSequence == 0 {
		return false, nil
	}
	raw, err := r.getRequest(ctx, res.RequestSequence)
	return raw != nil && r.requestTenant(raw.Subject, raw.Data, raw.Header) == o.Tenant, err
}

// planFailures decides what happens to each failure, given each alert's last
// success, the claimed replay copies by failure, and genuine, which checks a claim.
func planFailures(failures []failureRef, succeeded map[alertKey]uint64, copies map[uint64][]uint64, genuine func(seq uint64) (bool, error)) ([]ReplayItem, error) {
	failed := make(map[uint64]bool, len(failures)) // requests with a failure result
	for _, f := range failures {
		failed[f.own] = true
	}
	items := make([]ReplayItem, 0, len(failures))
	for _, f := range failures {
		it := ReplayItem{seq: f.own, answers: f.resultSeq, alertID: f.alertID, detail: "failure " + string(f.kind)}
		if f.alertID != "" && succeeded[alertKey{f.tenant, f.alertID}] > f.resultSeq {
			it.skip = SkipSucceededSince
		}
		for _, c := range copies[f.resultSeq] {
			if it.skip != "" {
				break
			}
			switch ok, err := genuine(c); {
			case err != nil:
				return nil, err
			case ok && failed[c]:
				it.skip = SkipReplayFailed
			case ok:
				it.skip = SkipReplayPending
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// lastSuccesses is the sequence of the last believed success of each alert
// of failures since the first of them, 0 for none.
func (r *Replay) lastSuccesses(ctx context.Context, failures []failureRef) (map[alertKey]uint64, error) {
	last := make(map[alertKey]uint64, len(failures))
	for _, f := range failures {
		last[alertKey{f.tenant, f.alertID}] = 0
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.SuccessSubject, broker.TenantSubject(r.cfg.SuccessSubject)},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &failures[0].at}
	err := consumer.Scan(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		tenant, _ := r.believer.Subjects.Tenant(msg.Subject())
		key := alertKey{tenant, msg.Headers().Get(message.HeaderAlertID)}
		if _, ok := last[key]; !ok {
			return true, nil
		}
		res, err := r.believer.Believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
		if res != nil {
			last[key] = meta.Sequence.Stream
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("read success results: %w", err)
	}
	return last, nil
}

// replayCopies are the requests since from whose message ID claims to be a
// replay copy answering a failure, by the failure's sequence.
func (r *Replay) replayCopies(ctx context.Context, from time.Time) (map[uint64][]uint64, error) {
	copies := map[uint64][]uint64{}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.RequestSubject, broker.TenantSubject(r.cfg.RequestSubject)},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from, HeadersOnly: true}
	err := consumer.Scan(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if id, ok := parseReplayID(msg.Headers().Get(message.HeaderMsgID), r.identity); ok && id.answers != 0 {
			copies[id.answers] = append(copies[id.answers], meta.Sequence.Stream)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return copies, nil
}

// planStored selects the stored requests in the range (with a tenant, its own).
func (r *Replay) planStored(ctx context.Context) ([]ReplayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.RequestSubject, broker.TenantSubject(r.cfg.RequestSubject)}, HeadersOnly: true}
	if r.opts.Tenant != "" {
		occ.FilterSubjects[1], occ.HeadersOnly = r.cfg.RequestSubject+"."+r.opts.Tenant, false
	}
	if r.opts.FromSeq > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.opts.FromSeq
	} else {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.Since
	}
	var items []ReplayItem
	err := consumer.Scan(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if (r.opts.ToSeq > 0 && meta.Sequence.Stream > r.opts.ToSeq) || (!r.opts.Until.IsZero() && meta.Timestamp.After(r.opts.Until)) {
			return false, nil
		}
		if r.opts.Tenant != "" && r.requestTenant(msg.Subject(), msg.Data(), msg.Headers()) != r.opts.Tenant {
			r.sum.Filtered++
			return true, nil
		}
		items = append(items, ReplayItem{seq: meta.Sequence.Stream, detail: "stored " + meta.Timestamp.UTC().Format(time.RFC3339)})
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return items, nil
}

// replayID is what a copy's message ID says: the request it copies, and the
// failure it answers (0 for a range replay); two runs at once give a
// candidate the same ID, and the request stream's duplicate window keeps one.
type replayID struct{ source, answers uint64 }

func (id replayID) String(identity string) string {
	if id.answers != 0 {
		return fmt.Sprintf("replay-%s-%d-f%d", identity, id.source, id.answers)
	}
	return fmt.Sprintf("replay-%s-%d-s", identity, id.source)
}

// parseReplayID reads the source and the failure answered of a replay
// copy's message ID; ok is false for any other.
func parseReplayID(s, identity string) (id replayID, ok bool) {
	rest, found := strings.CutPrefix(s, "replay-"+identity+"-")
	src, rest, cut := strings.Cut(rest, "-")
	n, err := strconv.ParseUint(src, 10, 64)
	if !found || !cut || err != nil || n == 0 {
		return id, false
	}
	id.source = n
	if f, isFailure := strings.CutPrefix(rest, "f"); isFailure {
		num, _, _ := strings.Cut(f, "-")
		if a, err := strconv.ParseUint(num, 10, 64); err == nil {
			id.answers = a
		}
	}
	return id, true
}

// copyRoot is the original of the chain of the request at seq when replay
// published it (a replay ID naming a source of which it is an exact copy;
// a header alone proves nothing), else 0.
func (r *Replay) copyRoot(ctx context.Context, seq uint64) (root uint64, err error) {
	if root, ok := r.copies[seq]; ok {
		return root, nil
	}
	defer func() {
		if err == nil {
			r.copies[seq] = root
		}
	}()
	msg, err := r.getRequest(ctx, seq)
	if msg == nil || err != nil {
		return 0, err
	}
	id, ok := parseReplayID(msg.Header.Get(message.HeaderMsgID), r.identity)
	if !ok || id.source >= seq {
		return 0, nil
	}
	src, err := r.getRequest(ctx, id.source)
	if src == nil || err != nil || msg.Subject != src.Subject || !bytes.Equal(msg.Data, src.Data) ||
		!maps.Equal(copiedHeaders(msg.Header), copiedHeaders(src.Header)) {
		return 0, err
	}
	if n := message.ReplayOf(msg.Header); n > 0 && n <= id.source {
		return n, nil
	}
	return id.source, nil
}

// getRequest reads a stored request; nil when gone or not on REQUEST_SUBJECT.
func (r *Replay) getRequest(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	raw, err := r.believer.requests.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read request %d: %w", seq, err)
	}
	if _, ok := r.believer.Subjects.Tenant(raw.Subject); !ok {
		return nil, nil
	}
	return raw, nil
}

// copied reports whether a replay copies the header k: all but Nats-*,
// which the server acts on, and Replay-Of.
func copied(k string) bool {
	return !strings.HasPrefix(strings.ToLower(k), "nats-") && !strings.EqualFold(k, message.HeaderReplayOf)
}

// copiedHeaders are the headers of h a replay copies, but the trace context.
func copiedHeaders(h nats.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		traced := strings.EqualFold(k, message.HeaderTraceparent) || strings.EqualFold(k, message.HeaderTracestate) || strings.EqualFold(k, message.HeaderBaggage)
		if copied(k) && !traced {
			m[http.CanonicalHeaderKey(k)] = strings.Join(v, "\x00")
		}
	}
	return m
}

// replayMessage is the republished copy of a stored request.
func replayMessage(raw *jetstream.RawStreamMsg, root uint64, msgID string) *nats.Msg {
	h := nats.Header{}
	for k, v := range raw.Header {
		if copied(k) {
			h[k] = slices.Clone(v)
		}
	}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(root, 10))
	h.Set(message.HeaderMsgID, msgID)
	return &nats.Msg{Subject: raw.Subject, Header: h, Data: raw.Data}
}
