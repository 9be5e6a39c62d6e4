package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
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

// maxCallsPerResult bounds the calls one result can stand for in
// RecentCalls.
const maxCallsPerResult = 1000

// RecentCalls are the Defender calls that the results stored in cfg's
// result stream since from record: a time (when the result was stored) for
// each of a result's attempts. Calls of deliveries that ended without a
// result are not seen.
func RecentCalls(ctx context.Context, js jetstream.JetStream, cfg *config.Config, from time.Time) ([]time.Time, error) {
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.SuccessSubject, cfg.FailureSubject, broker.TenantSubject(cfg.SuccessSubject), broker.TenantSubject(cfg.FailureSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	}
	var starts []time.Time
	err := ScanStream(ctx, js, cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r struct {
			Attempts int `json:"attempts"`
		}
		if json.Unmarshal(msg.Data(), &r) == nil {
			for range min(r.Attempts, maxCallsPerResult) {
				starts = append(starts, meta.Timestamp)
			}
		}
		return true, nil
	})
	return starts, err
}
