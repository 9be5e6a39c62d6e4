package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// successKey names an alert of a tenant among the success results: a
// success for one tenant says nothing of another's failure.
func successKey(tenant, alertID string) string {
	if tenant == "" {
		return alertID
	}
	return tenant + "/" + alertID
}

// planFailed selects the matching failure results and decides for each one
// whether its request is republished.
func (r *Replay) planFailed(ctx context.Context) ([]ReplayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.cfg.FailureSubject, broker.TenantSubject(r.cfg.FailureSubject)}}
	if r.opts.Tenant != "" {
		// Another tenant's failures are on its own subject: never read.
		occ.FilterSubjects[1] = r.cfg.FailureSubject + "." + r.opts.Tenant
	}
	if !r.opts.Since.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.Since
	}
	var failures []failureRef
	err := consumer.Scan(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if !r.opts.Until.IsZero() && meta.Timestamp.After(r.opts.Until) {
			return false, nil
		}
		// A failure whose request is gone stays: it is planned and skipped
		// (SkipNotStored), as nothing can be republished.
		res, gone, err := r.believer.believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
		if gone {
			res = &message.Result{}
			if json.Unmarshal(msg.Data(), res) != nil {
				r.sum.Ignored++
				return true, nil
			}
		}
		switch {
		case err != nil:
			return false, err
		case res == nil:
			return true, nil
		case res.Error == nil:
			r.sum.Ignored++
			return true, nil
		}
		tenant, _ := r.believer.subjects.Tenant(msg.Subject())
		if !r.opts.selects(res.Error.Kind) || (r.opts.Alert != "" && res.AlertID != r.opts.Alert) ||
			(r.opts.Tenant != "" && tenant != "" && tenant != r.opts.Tenant) {
			r.sum.Filtered++
			return true, nil
		}
		// The result's replayOf is not read: it copies a header any
		// publisher can set. What replay published is told apart by
		// content (see copyOf).
		failures = append(failures, failureRef{
			resultSeq: meta.Sequence.Stream, at: meta.Timestamp,
			own: res.RequestSequence, alertID: res.AlertID, tenant: tenant, kind: res.Error.Kind,
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
	keys := make(map[string]bool, len(failures))
	for _, f := range failures {
		keys[successKey(f.tenant, f.alertID)] = true
	}
	succeeded, err := r.lastSuccesses(ctx, from, keys)
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
// stored request names it. A failure whose request is no longer stored, or
// that names none, cannot be told, and could not be replayed: it is left
// out.
func (r *Replay) tenantFailures(ctx context.Context, failures []failureRef) ([]failureRef, error) {
	if r.opts.Tenant == "" {
		return failures, nil
	}
	kept := failures[:0]
	for _, f := range failures {
		if f.tenant == "" && f.own == 0 {
			r.sum.Filtered++
			continue
		}
		if f.tenant == "" {
			raw, err := r.getRequest(ctx, f.own)
			if err != nil {
				return nil, err
			}
			if raw == nil || r.requestTenant(raw.Subject, raw.Data, raw.Header) != r.opts.Tenant {
				r.sum.Filtered++
				continue
			}
		}
		kept = append(kept, f)
	}
	return kept, nil
}

// planFailures decides what happens to each failure, given the stream
// sequence of the last success result of each alert, the requests that
// claim to be replay copies answering each failure result (by the failure's
// result sequence), and genuine, which tells whether a claimed copy is one
// that replay published.
func planFailures(failures []failureRef, succeeded map[string]uint64, copies map[uint64][]uint64, genuine func(seq uint64) (bool, error)) ([]ReplayItem, error) {
	failed := make(map[uint64]bool, len(failures)) // requests with a failure result
	for _, f := range failures {
		failed[f.own] = true
	}
	items := make([]ReplayItem, 0, len(failures))
	for _, f := range failures {
		it := ReplayItem{seq: f.own, answers: f.resultSeq, alertID: f.alertID, detail: "failure " + string(f.kind)}
		switch {
		case f.alertID != "" && succeeded[successKey(f.tenant, f.alertID)] > f.resultSeq:
			it.skip = SkipSucceededSince
		default:
			for _, c := range copies[f.resultSeq] {
				ok, err := genuine(c)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				it.skip = SkipReplayPending
				if failed[c] {
					it.skip = SkipReplayFailed
				}
				break
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// lastSuccesses reads the success results stored since from: the stream
// sequence of the last one the service wrote of each alert of keys.
func (r *Replay) lastSuccesses(ctx context.Context, from time.Time, keys map[string]bool) (map[string]uint64, error) {
	last := make(map[string]uint64)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.cfg.SuccessSubject, broker.TenantSubject(r.cfg.SuccessSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	}
	err := consumer.Scan(ctx, r.js, r.cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		tenant, _ := r.believer.subjects.Tenant(msg.Subject())
		key := successKey(tenant, msg.Headers().Get(message.HeaderAlertID))
		if !keys[key] {
			return true, nil
		}
		res, _, err := r.believer.believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
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

// replayCopies reads the requests stored since from whose message ID says
// they are replay copies answering a failure result: the stream sequences
// of those copies by the failure's result sequence. They are claims only,
// checked by copyOf before they count.
func (r *Replay) replayCopies(ctx context.Context, from time.Time) (map[uint64][]uint64, error) {
	copies := make(map[uint64][]uint64)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: r.requestSubjects(),
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
	}
	err := consumer.Scan(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
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

// planStored selects the stored request messages in the range.
func (r *Replay) planStored(ctx context.Context) ([]ReplayItem, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: r.requestSubjects(), HeadersOnly: true}
	if r.opts.Tenant != "" {
		// The tenant's own subject, and the plain one, whose bodies may
		// name it: the bodies are read.
		occ.FilterSubjects = []string{r.cfg.RequestSubject, r.cfg.RequestSubject + "." + r.opts.Tenant}
		occ.HeadersOnly = false
	}
	if r.opts.FromSeq > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.opts.FromSeq
	} else {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.opts.Since
	}
	var items []ReplayItem
	err := consumer.Scan(ctx, r.js, r.cfg.RequestStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if r.opts.ToSeq > 0 && meta.Sequence.Stream > r.opts.ToSeq {
			return false, nil
		}
		if !r.opts.Until.IsZero() && meta.Timestamp.After(r.opts.Until) {
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
