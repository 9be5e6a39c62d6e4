package consumer

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Reader reads a stream in order: the one way stored messages are read back.
type Reader struct {
	cons jetstream.Consumer
	it   jetstream.MessagesContext
}

// Open starts reading stream at what occ selects.
func Open(ctx context.Context, js jetstream.JetStream, stream string, occ jetstream.OrderedConsumerConfig) (*Reader, error) {
	cons, err := js.OrderedConsumer(ctx, stream, occ)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return &Reader{cons: cons, it: it}, nil
}

// Next waits for the next message, until ctx ends; ctx ending also ends the
// reading (an ordered consumer re-creating itself watches no context).
func (r *Reader) Next(ctx context.Context) (jetstream.Msg, *jetstream.MsgMetadata, error) {
	defer context.AfterFunc(ctx, r.it.Stop)()
	msg, err := r.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	meta, err := msg.Metadata()
	if err != nil {
		return nil, nil, err
	}
	return msg, meta, nil
}

// Info is the state of the reading on the server.
func (r *Reader) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	return r.cons.Info(ctx)
}

// Stop ends the reading.
func (r *Reader) Stop() { r.it.Stop() }

// Scan calls fn with each message occ selects up to the last stored at its start.
func Scan(ctx context.Context, js jetstream.JetStream, stream string, occ jetstream.OrderedConsumerConfig, fn func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error)) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	if s.CachedInfo().State.Msgs == 0 {
		return nil
	}
	r, err := Open(ctx, js, stream, occ)
	if err != nil {
		return err
	}
	defer r.Stop()
	if info, err := r.Info(ctx); err != nil || (info.NumPending == 0 && info.Delivered.Consumer == 0) {
		return err
	}
	for {
		msg, meta, err := r.Next(ctx)
		if err != nil {
			return err
		}
		if meta.Sequence.Stream > last {
			return nil
		}
		if more, err := fn(msg, meta); err != nil || !more {
			return err
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= last {
			return nil
		}
	}
}
