package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// Subjects are cfg's request and result subjects.
func Subjects(cfg *config.Config) message.Subjects {
	return message.Subjects{Request: cfg.RequestSubject, Success: cfg.SuccessSubject, Failure: cfg.FailureSubject, Plain: config.DefaultTenant}
}

// ResultsSince selects every result stored since from.
func ResultsSince(cfg *config.Config, from time.Time) jetstream.OrderedConsumerConfig {
	return jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.SuccessSubject, cfg.FailureSubject, broker.TenantSubject(cfg.SuccessSubject), broker.TenantSubject(cfg.FailureSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	}
}

// maxCallsPerResult bounds the calls one result can stand for.
const maxCallsPerResult = 1000

// RecentCalls are the calls the results stored since from record, by
// tenant: the result's store time for each of its attempts.
func RecentCalls(ctx context.Context, js jetstream.JetStream, cfg *config.Config, from time.Time) (map[string][]time.Time, error) {
	subjects := Subjects(cfg)
	starts := map[string][]time.Time{}
	err := consumer.Scan(ctx, js, cfg.ResultStream, ResultsSince(cfg, from), func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r struct {
			Attempts int `json:"attempts"`
		}
		tenant, _ := subjects.Tenant(msg.Subject())
		tenant = cmp.Or(tenant, config.DefaultTenant)
		if json.Unmarshal(msg.Data(), &r) == nil {
			for range min(r.Attempts, maxCallsPerResult) {
				starts[tenant] = append(starts[tenant], meta.Timestamp)
			}
		}
		return true, nil
	})
	return starts, err
}

// Believer checks results against the request each names
// (message.Subjects.Believe), reading each request once.
type Believer struct {
	Subjects  message.Subjects
	Ignored   int // results not believed
	js        jetstream.JetStream
	requests  jetstream.Stream
	stream    string
	read      map[uint64]*jetstream.RawStreamMsg // nil: no longer stored
	preloaded [2]uint64                          // the range Preload read
}

// NewBeliever is a Believer of the results of cfg's streams.
func NewBeliever(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (*Believer, error) {
	s, err := js.Stream(ctx, cfg.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	return &Believer{Subjects: Subjects(cfg), js: js, requests: s, stream: cfg.RequestStream, read: map[uint64]*jetstream.RawStreamMsg{}}, nil
}

// Preload reads the requests stored since from (less a minute of clock
// slack) in one scan, for a reader of many results.
func (b *Believer) Preload(ctx context.Context, from time.Time) error {
	from = from.Add(-time.Minute)
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from}
	return consumer.Scan(ctx, b.js, b.stream, occ, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		seq := meta.Sequence.Stream
		if b.preloaded[0] == 0 {
			b.preloaded[0] = seq
		}
		b.preloaded[1] = seq
		b.read[seq] = &jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: seq, Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp}
		return true, nil
	})
}

// Believe returns the result on subject with header and data if it is the
// service's result of a stored request; nil if not, counted in Ignored (a
// request no longer stored leaves nothing to check its result against).
func (b *Believer) Believe(ctx context.Context, subject string, header nats.Header, data []byte) (*message.Result, error) {
	label, err := b.Subjects.Label(b.stream, subject, header)
	if err != nil {
		b.Ignored++
		return nil, nil
	}
	req, ok := b.read[label.Seq]
	if !ok && (label.Seq < b.preloaded[0] || label.Seq > b.preloaded[1]) { // in the range read: no longer stored
		m, err := b.requests.GetMsg(ctx, label.Seq)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("read request %d: %w", label.Seq, err)
		}
		b.read[label.Seq], req = m, m
	}
	var res *message.Result
	if req != nil {
		res, err = b.Subjects.Believe(b.stream, message.StoredRequest{Subject: req.Subject, Data: req.Data, Header: req.Header, Seq: req.Sequence, Stored: req.Time},
			subject, header, data)
	}
	if req == nil || err != nil {
		b.Ignored++
		return nil, nil
	}
	return res, nil
}

// ParseWhen reads a point in time: a Go duration back from now ("2h",
// "30m") or an RFC 3339 time.
func ParseWhen(s string, now time.Time) (time.Time, error) {
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
