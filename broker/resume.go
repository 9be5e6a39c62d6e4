package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MetadataAnswered is the request consumer's metadata key that lists the
// request sequences, at or after its start sequence, that already had their
// result when it was created ("4-9,12"). Every replica acknowledges those
// without handling them.
const MetadataAnswered = "alert-domains.answered"

// clockSlack covers clock differences between the servers that lead the
// request and the result stream when results are searched by time.
const clockSlack = 5 * time.Minute

// maxAnsweredMetadata bounds the answered list kept in the consumer's
// metadata; a longer one is an error rather than a consumer the server
// refuses or a list cut short.
const maxAnsweredMetadata = 256 << 10

// CreateRequestConsumer creates the request consumer where processing
// stopped, for a consumer that is missing (deleted while no replica ran,
// or never created on a stream that already holds requests). What is stored
// decides where that is, not a memory of this process: the result stream
// holds one result per answered request, naming it by requestSequence. The
// consumer starts at the first stored request without a result, and the
// requests after it that have theirs are listed in its metadata
// (MetadataAnswered) and acknowledged unhandled by whichever replica
// receives them. No request gets a second result or a second Defender call,
// and none without a result is skipped. floor, when not 0, is an
// acknowledgement floor this process saw: requests up to it are answered,
// which shortens the search.
//
// The search reads the results stored since the first request it has to
// consider was stored (within the streams' retention of a week); it runs
// only when the consumer is missing.
func (t Topology) CreateRequestConsumer(ctx context.Context, js jetstream.JetStream, floor uint64, logger *slog.Logger) (jetstream.Consumer, error) {
	return t.createWhereStopped(ctx, js, t.Consumer, floor, logger,
		func(ctx context.Context, rs jetstream.Stream, info *jetstream.StreamInfo, set *seqSet) (int, error) {
			since := requestTime(ctx, rs, info, set.lo)
			return readAnswered(ctx, js, t.ResultStream.Name, since, set)
		})
}

// CreateAdvisoryConsumer creates the safety net's consumer of the
// max-deliveries advisories where it stopped, the same way: it starts at the
// first stored advisory whose request has no result, and the advisories
// after it whose request has one are listed in its metadata.
func (t Topology) CreateAdvisoryConsumer(ctx context.Context, js jetstream.JetStream, floor uint64, logger *slog.Logger) (jetstream.Consumer, error) {
	return t.createWhereStopped(ctx, js, t.Advisories, floor, logger,
		func(ctx context.Context, rs jetstream.Stream, info *jetstream.StreamInfo, set *seqSet) (int, error) {
			advisories, err := readAdvisories(ctx, js, t.RequestStream.Name, t.Advisories.FilterSubject, set.lo, set.hi)
			if err != nil || len(advisories) == 0 {
				set.fill()
				return 0, err
			}
			minReq := set.hi
			for _, req := range advisories {
				minReq = min(minReq, req)
			}
			minReq = max(minReq, info.State.FirstSeq, 1)
			results := newSeqSet(minReq, set.hi)
			read, err := readAnswered(ctx, js, t.ResultStream.Name, requestTime(ctx, rs, info, minReq), results)
			if err != nil {
				return read, err
			}
			// Only advisories of requests without a result are left to answer.
			set.fill()
			for adv, req := range advisories {
				if req < minReq || !results.has(req) {
					set.remove(adv)
				}
			}
			return read + len(advisories), nil
		})
}

// createWhereStopped creates the consumer cfg describes, starting at the
// first sequence after floor that mark leaves unset, with the set ones after
// it in its metadata.
func (t Topology) createWhereStopped(ctx context.Context, js jetstream.JetStream, cfg jetstream.ConsumerConfig, floor uint64, logger *slog.Logger,
	mark func(ctx context.Context, rs jetstream.Stream, info *jetstream.StreamInfo, set *seqSet) (read int, err error)) (jetstream.Consumer, error) {
	stream := t.RequestStream.Name
	rs, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", stream, err)
	}
	info, err := rs.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", stream, err)
	}
	began := time.Now()
	st := info.State
	lower := max(st.FirstSeq, floor+1, 1)
	var skipped, read int
	switch {
	case st.Msgs == 0 && st.LastSeq == 0:
		// A new stream: everything published from now on is new.
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case lower > st.LastSeq:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, st.LastSeq+1
	default:
		answered := newSeqSet(lower, st.LastSeq)
		if read, err = mark(ctx, rs, info, answered); err != nil {
			return nil, err
		}
		start, ranges := answered.resume()
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
		if len(ranges) > 0 {
			text := formatRanges(ranges)
			if len(text) > maxAnsweredMetadata {
				return nil, fmt.Errorf("create consumer %s on %s: %d separate runs of answered messages after sequence %d are too many to record", cfg.Durable, stream, len(ranges), start)
			}
			cfg.Metadata = map[string]string{MetadataAnswered: text}
			for _, r := range ranges {
				skipped += int(r.hi - r.lo + 1)
			}
		}
	}
	c, err := js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		// Another replica created it first, from the same stored facts.
		return js.Consumer(ctx, stream, cfg.Durable)
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	attrs := []any{slog.String("stream", stream), slog.String("consumer", cfg.Durable)}
	if cfg.DeliverPolicy == jetstream.DeliverAllPolicy {
		logger.Info("created consumer", attrs...)
	} else {
		logger.Warn("consumer was missing and has been created where processing stopped", append(attrs,
			slog.Uint64("start_seq", cfg.OptStartSeq), slog.Int("answered_after_start", skipped),
			slog.Int("messages_read", read), slog.Duration("took", time.Since(began)))...)
	}
	return c, nil
}

// requestTime is when the request at seq was stored, less the clock slack
// between servers, and never before the stream was created (an older
// result belongs to a stream of the same name deleted since).
func requestTime(ctx context.Context, rs jetstream.Stream, info *jetstream.StreamInfo, seq uint64) time.Time {
	if m, err := rs.GetMsg(ctx, seq); err == nil {
		return latest(info.Created, m.Time.Add(-clockSlack))
	}
	return latest(info.Created, info.State.FirstTime.Add(-clockSlack))
}

// readAdvisories returns, for every max-deliveries advisory stored on
// subject between the sequences lo and hi, the request sequence it names.
func readAdvisories(ctx context.Context, js jetstream.JetStream, stream, subject string, lo, hi uint64) (map[uint64]uint64, error) {
	oc, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    lo,
	})
	if err != nil {
		return nil, fmt.Errorf("read advisories of %s: %w", stream, err)
	}
	out := map[uint64]uint64{}
	for {
		// What is stored now, no wait for more (see readAnswered).
		batch, err := oc.FetchNoWait(1024)
		if err != nil {
			return nil, fmt.Errorf("read advisories of %s: %w", stream, err)
		}
		got, done := 0, false
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			var adv struct {
				StreamSeq uint64 `json:"stream_seq"`
			}
			if meta.Sequence.Stream <= hi && json.Unmarshal(m.Data(), &adv) == nil && adv.StreamSeq > 0 {
				out[meta.Sequence.Stream] = adv.StreamSeq
			}
			done = done || meta.Sequence.Stream >= hi || meta.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("read advisories of %s: %w", stream, err)
		}
		if done || got == 0 {
			return out, nil
		}
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// readAnswered marks in set the request sequence of every result stored
// since the given time, reading the result stream up to its last message
// as it is now.
func readAnswered(ctx context.Context, js jetstream.JetStream, resultStream string, since time.Time, set *seqSet) (int, error) {
	s, err := js.Stream(ctx, resultStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", resultStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", resultStream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || info.State.LastTime.Before(since) {
		return 0, nil
	}
	oc, err := js.OrderedConsumer(ctx, resultStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
	})
	if err != nil {
		return 0, fmt.Errorf("read results of %s: %w", resultStream, err)
	}
	read := 0
	for {
		// A batch of Fetch ends only at its count or its wait, however soon
		// the last message came: what is stored now is all there is to read.
		batch, err := oc.FetchNoWait(4096)
		if err != nil {
			return read, fmt.Errorf("read results of %s: %w", resultStream, err)
		}
		got, done := 0, false
		for m := range batch.Messages() {
			got++
			read++
			var r struct {
				RequestSequence uint64 `json:"requestSequence"`
			}
			if json.Unmarshal(m.Data(), &r) == nil {
				set.add(r.RequestSequence)
			}
			if meta, err := m.Metadata(); err == nil && (meta.Sequence.Stream >= last || meta.NumPending == 0) {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			return read, fmt.Errorf("read results of %s: %w", resultStream, err)
		}
		if done || got == 0 {
			return read, nil
		}
		if err := ctx.Err(); err != nil {
			return read, err
		}
	}
}

// seqSet is a bitmap of the sequences lo..hi.
type seqSet struct {
	lo, hi uint64
	bits   []uint64
}

func newSeqSet(lo, hi uint64) *seqSet {
	return &seqSet{lo: lo, hi: hi, bits: make([]uint64, (hi-lo)/64+1)}
}

func (s *seqSet) add(seq uint64) {
	if seq < s.lo || seq > s.hi {
		return
	}
	i := seq - s.lo
	s.bits[i/64] |= 1 << (i % 64)
}

// fill adds every sequence lo..hi.
func (s *seqSet) fill() {
	for i := range s.bits {
		s.bits[i] = ^uint64(0)
	}
}

func (s *seqSet) remove(seq uint64) {
	if seq < s.lo || seq > s.hi {
		return
	}
	i := seq - s.lo
	s.bits[i/64] &^= 1 << (i % 64)
}

func (s *seqSet) has(seq uint64) bool {
	i := seq - s.lo
	return s.bits[i/64]&(1<<(i%64)) != 0
}

// resume returns the first sequence not in the set (hi+1 when all are),
// and the runs of sequences in the set after it.
func (s *seqSet) resume() (start uint64, after []seqRange) {
	start = s.hi + 1
	for w, word := range s.bits {
		if word != ^uint64(0) {
			start = min(s.lo+uint64(w)*64+uint64(bits.TrailingZeros64(^word)), s.hi+1)
			break
		}
	}
	var cur *seqRange
	for seq := start; seq <= s.hi && seq >= start; seq++ {
		if !s.has(seq) {
			cur = nil
			continue
		}
		if cur == nil {
			after = append(after, seqRange{seq, seq})
			cur = &after[len(after)-1]
		} else {
			cur.hi = seq
		}
	}
	return start, after
}

// seqRange is the sequences lo..hi.
type seqRange struct{ lo, hi uint64 }

func formatRanges(rs []seqRange) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(r.lo, 10))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.FormatUint(r.hi, 10))
		}
	}
	return b.String()
}

func parseRanges(text string) ([]seqRange, error) {
	var rs []seqRange
	for part := range strings.SplitSeq(text, ",") {
		if part == "" {
			continue
		}
		loText, hiText, isRange := strings.Cut(part, "-")
		lo, err := strconv.ParseUint(loText, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(hiText, 10, 64); err != nil || hi < lo {
				return nil, fmt.Errorf("%q is not a range", part)
			}
		}
		rs = append(rs, seqRange{lo, hi})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	return rs, nil
}

func inRanges(rs []seqRange, seq uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].hi >= seq })
	return i < len(rs) && rs[i].lo <= seq
}

// Binder binds the service to its durable consumer, again and again if it
// has to. With provisioning on, a missing consumer is created where
// processing stopped ([Topology.CreateRequestConsumer],
// [Topology.CreateAdvisoryConsumer] for the safety net's).
// With provisioning off, binding waits until an operator restores it.
type Binder struct {
	js        jetstream.JetStream
	topo      Topology
	provision bool
	requests  bool
	logger    *slog.Logger
	floor     atomic.Uint64
}

// NewBinder returns the binder of t's consumer (t.Consumer).
func NewBinder(js jetstream.JetStream, t Topology, provision bool, logger *slog.Logger) *Binder {
	requests := t.Consumer.Durable != t.Advisories.Durable
	return &Binder{js: js, topo: t, provision: provision, requests: requests, logger: logger}
}

// Bind returns the consumer, creating it again when it is gone and
// provisioning is on. Requests listed in the consumer's MetadataAnswered
// are acknowledged as they arrive and never reach the caller.
func (b *Binder) Bind(ctx context.Context) (jetstream.Consumer, error) {
	c, err := b.js.Consumer(ctx, b.topo.RequestStream.Name, b.topo.Consumer.Durable)
	switch {
	case err == nil:
		b.Observe(c.CachedInfo())
	case !errors.Is(err, jetstream.ErrConsumerNotFound) || !b.provision:
		return nil, err
	case b.requests:
		if c, err = b.topo.CreateRequestConsumer(ctx, b.js, b.floor.Load(), b.logger); err != nil {
			return nil, err
		}
	default:
		if c, err = b.topo.CreateAdvisoryConsumer(ctx, b.js, b.floor.Load(), b.logger); err != nil {
			return nil, err
		}
	}
	return b.skipAnswered(c), nil
}

// Observe records the consumer's acknowledgement floor from fresh consumer
// information.
func (b *Binder) Observe(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	for {
		old := b.floor.Load()
		if info.AckFloor.Stream <= old || b.floor.CompareAndSwap(old, info.AckFloor.Stream) {
			return
		}
	}
}

// skipAnswered wraps c so that the requests its metadata lists as answered
// are acknowledged and not handed on.
func (b *Binder) skipAnswered(c jetstream.Consumer) jetstream.Consumer {
	info := c.CachedInfo()
	if info == nil {
		return c
	}
	text, ok := info.Config.Metadata[MetadataAnswered]
	if !ok {
		return c
	}
	rs, err := parseRanges(text)
	if err != nil {
		b.logger.Error("consumer metadata unreadable, handling every request it delivers",
			slog.String("key", MetadataAnswered), slog.Any("error", err))
		return c
	}
	if len(rs) == 0 || info.AckFloor.Stream >= rs[len(rs)-1].hi {
		return c
	}
	return &skipConsumer{Consumer: c, answered: rs, logger: b.logger}
}

type skipConsumer struct {
	jetstream.Consumer
	answered []seqRange
	logger   *slog.Logger
}

func (s *skipConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	batch, err := s.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	out := &skipBatch{inner: batch, msgs: make(chan jetstream.Msg, n)}
	go func() {
		defer close(out.msgs)
		for m := range batch.Messages() {
			if meta, err := m.Metadata(); err == nil && inRanges(s.answered, meta.Sequence.Stream) {
				if err := m.Ack(); err != nil {
					s.logger.Warn("cannot acknowledge a request answered before the consumer was created",
						slog.Uint64("stream_seq", meta.Sequence.Stream), slog.Any("error", err))
				}
				s.logger.Debug("request answered before the consumer was created, acknowledged",
					slog.Uint64("stream_seq", meta.Sequence.Stream))
				continue
			}
			out.msgs <- m
		}
	}()
	return out, nil
}

type skipBatch struct {
	inner jetstream.MessageBatch
	msgs  chan jetstream.Msg
}

func (b *skipBatch) Messages() <-chan jetstream.Msg { return b.msgs }
func (b *skipBatch) Error() error                   { return b.inner.Error() }
