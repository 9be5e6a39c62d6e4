package ops

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ScanStream calls fn with each message of stream name that occ selects,
// oldest first, up to the last message stored when the scan starts (so
// messages a run publishes itself are never read back). fn returns false
// to stop.
func ScanStream(ctx context.Context, js jetstream.JetStream, name string, occ jetstream.OrderedConsumerConfig, fn func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error)) error {
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
