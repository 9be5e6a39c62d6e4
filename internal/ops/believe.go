package ops

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/message"
)

// believer tells the results the service wrote from anything else
// published on a result subject, by checking each against the request it
// names (message.Subjects.Check), reading each request once.
type believer struct {
	requests jetstream.Stream
	stream   string
	subjects message.Subjects
	read     map[uint64]*jetstream.RawStreamMsg // nil: no longer stored
	Ignored  int                                // results not believed
}

func newBeliever(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (*believer, error) {
	s, err := js.Stream(ctx, cfg.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.RequestStream, err)
	}
	return &believer{requests: s, stream: cfg.RequestStream, subjects: Subjects(cfg), read: map[uint64]*jetstream.RawStreamMsg{}}, nil
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
	if !ok {
		m, err := b.requests.GetMsg(ctx, label.Seq)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, false, fmt.Errorf("read request %d: %w", label.Seq, err)
		}
		b.read[label.Seq], req = m, m
	}
	if req == nil {
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
