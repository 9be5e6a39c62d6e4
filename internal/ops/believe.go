package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// believer tells the results the service wrote from anything else
// published on a result subject, by checking each against the request it
// names (message.Subjects.Check), reading each request once.
type believer struct {
	js       jetstream.JetStream
	requests jetstream.Stream
	stream   string
	subjects message.Subjects
	read     map[uint64]*jetstream.RawStreamMsg // nil: no longer stored
	// preloaded is the range of requests read by preload: one not in read
	// is no longer stored.
	preloaded [2]uint64
	Ignored   int // results not believed
}

func newBeliever(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (*believer, error) {
	s, err := js.Stream(ctx, cfg.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	return &believer{js: js, requests: s, stream: cfg.RequestStream, subjects: Subjects(cfg), read: map[uint64]*jetstream.RawStreamMsg{}}, nil
}

// preload reads the requests stored since from (less a minute of clock
// difference between the streams' leaders) in one scan, for a reader of
// many results: each is then checked without a request of its own.
func (b *believer) preload(ctx context.Context, from time.Time) error {
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

// believe returns the result stored on subject with header and data when
// it is the service's result of the stored request it names. A result
// whose request is no longer stored cannot be checked: gone, and not
// believed.
func (b *believer) believe(ctx context.Context, subject string, header nats.Header, data []byte) (res *message.Result, gone bool, err error) {
	label, err := b.subjects.Label(b.stream, subject, header)
	if err != nil {
		b.Ignored++
		return nil, false, nil
	}
	req, ok := b.read[label.Seq]
	if !ok && b.preloaded[0] <= label.Seq && label.Seq <= b.preloaded[1] {
		ok = true // in the range read, and no longer stored
	}
	if !ok {
		m, err := b.requests.GetMsg(ctx, label.Seq)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, false, fmt.Errorf("read request %d: %w", label.Seq, err)
		}
		b.read[label.Seq], req = m, m
	}
	if req == nil {
		if label.Seq > b.requests.CachedInfo().State.LastSeq {
			if info, err := b.requests.Info(ctx); err != nil || label.Seq > info.State.LastSeq {
				b.Ignored++ // a request that was never stored
				return nil, false, nil
			}
		}
		return nil, true, nil
	}
	res, err = b.subjects.Believe(b.stream, message.StoredRequest{Subject: req.Subject, Data: req.Data, Header: req.Header, Seq: req.Sequence, Stored: req.Time},
		subject, header, data)
	if err != nil {
		b.Ignored++
		return nil, false, nil
	}
	return res, false, nil
}
