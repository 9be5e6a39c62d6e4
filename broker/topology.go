package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
)

// Retention of the streams: long enough for an operator to replay a week.
const (
	RequestMaxAge          = 7 * 24 * time.Hour
	ResultMaxAge           = 7 * 24 * time.Hour
	RequestDuplicateWindow = 2 * time.Minute
)

// MaxDeliveriesSubject is the subject of the server's advisory for a request
// message that ran out of deliveries.
func MaxDeliveriesSubject(stream, consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + "." + consumer
}

// Topology is the shape of the streams, consumers and bucket the service
// uses, derived from the configuration.
type Topology struct {
	RequestStream jetstream.StreamConfig
	ResultStream  jetstream.StreamConfig
	Consumer      jetstream.ConsumerConfig
	// Advisories is the durable consumer that reads the max-deliveries
	// advisories the request stream captures, so that a request that ran out
	// of deliveries while no replica was running still gets its result.
	Advisories jetstream.ConsumerConfig
	// Cache is the result cache bucket; nil when CACHE_TTL is 0.
	Cache *jetstream.KeyValueConfig
}

// CacheBucketName is the key-value bucket that holds cached success results.
func CacheBucketName(cfg *config.Config) string {
	return cfg.ConsumerName + "-cache"
}

// NewTopology derives the topology from cfg.
func NewTopology(cfg *config.Config) Topology {
	advisory := MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName)
	t := Topology{
		RequestStream: jetstream.StreamConfig{
			Name:        cfg.RequestStream,
			Description: "alert-domains requests: Defender alert IDs to look up",
			Subjects:    []string{cfg.RequestSubject, advisory},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      RequestMaxAge,
			Duplicates:  RequestDuplicateWindow,
		},
		ResultStream: jetstream.StreamConfig{
			Name:        cfg.ResultStream,
			Description: "alert-domains results: one per request",
			Subjects:    []string{cfg.SuccessSubject, cfg.FailureSubject},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      ResultMaxAge,
			Duplicates:  min(cfg.DuplicateWindow(), ResultMaxAge),
		},
		Consumer: jetstream.ConsumerConfig{
			Durable:       cfg.ConsumerName,
			Description:   "alert-domains workers",
			FilterSubject: cfg.RequestSubject,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    cfg.MaxDeliver,
			MaxAckPending: MaxAckPending(cfg.Concurrency),
			ReplayPolicy:  jetstream.ReplayInstantPolicy,
		},
		Advisories: jetstream.ConsumerConfig{
			Durable:       cfg.ConsumerName + "-max-deliveries",
			Description:   "alert-domains safety net: results for requests that ran out of deliveries",
			FilterSubject: advisory,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    -1, // unlimited, as the server stores it (0 read back as -1 was a false drift)
			MaxAckPending: 64,
			ReplayPolicy:  jetstream.ReplayInstantPolicy,
		},
	}
	if cfg.CacheTTL > 0 {
		t.Cache = &jetstream.KeyValueConfig{
			Bucket:      CacheBucketName(cfg),
			Description: "alert-domains cached success results",
			TTL:         cfg.CacheTTL,
			History:     1,
			Storage:     jetstream.FileStorage,
		}
	}
	return t
}

// MaxAckPending is the consumer's limit on unacknowledged messages: the
// work of four replicas with the same concurrency, plus their buffers.
func MaxAckPending(concurrency int) int {
	return 8 * concurrency
}

// Provision creates or updates the streams, the consumers and the bucket,
// and logs what it created and every setting it changed.
func (t Topology) Provision(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) error {
	for _, sc := range []jetstream.StreamConfig{t.RequestStream, t.ResultStream} {
		if err := provisionStream(ctx, js, sc, logger); err != nil {
			return err
		}
	}
	for _, cc := range []jetstream.ConsumerConfig{t.Consumer, t.Advisories} {
		if err := provisionConsumer(ctx, js, t.RequestStream.Name, cc, logger); err != nil {
			return err
		}
	}
	if t.Cache != nil {
		if _, err := js.CreateOrUpdateKeyValue(ctx, *t.Cache); err != nil {
			return fmt.Errorf("provision cache bucket %s: %w", t.Cache.Bucket, err)
		}
	}
	return nil
}

func provisionStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, logger *slog.Logger) error {
	s, err := js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		logger.Info("created stream", slog.String("stream", want.Name), slog.Any("subjects", want.Subjects))
		return nil
	case err != nil:
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	diffs := streamDiff(have, want)
	if len(diffs) == 0 {
		return nil
	}
	// Keep what operators may have tuned that the service does not own.
	merged := have
	merged.Subjects, merged.Retention, merged.MaxAge, merged.Duplicates = want.Subjects, want.Retention, want.MaxAge, want.Duplicates
	if _, err := js.UpdateStream(ctx, merged); err != nil {
		return fmt.Errorf("update stream %s (%v): %w", want.Name, diffs, err)
	}
	logger.Info("updated stream settings that drifted", slog.String("stream", want.Name), slog.Any("changes", diffs))
	return nil
}

func streamDiff(have, want jetstream.StreamConfig) []string {
	var d []string
	if fmt.Sprint(have.Subjects) != fmt.Sprint(want.Subjects) {
		d = append(d, fmt.Sprintf("subjects %v -> %v", have.Subjects, want.Subjects))
	}
	if have.Retention != want.Retention {
		d = append(d, fmt.Sprintf("retention %v -> %v", have.Retention, want.Retention))
	}
	if have.MaxAge != want.MaxAge {
		d = append(d, fmt.Sprintf("max_age %v -> %v", have.MaxAge, want.MaxAge))
	}
	if have.Duplicates != want.Duplicates {
		d = append(d, fmt.Sprintf("duplicate_window %v -> %v", have.Duplicates, want.Duplicates))
	}
	return d
}

func provisionConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig, logger *slog.Logger) error {
	c, err := js.Consumer(ctx, stream, want.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if _, err := js.CreateOrUpdateConsumer(ctx, stream, want); err != nil {
			return fmt.Errorf("create consumer %s on %s: %w", want.Durable, stream, err)
		}
		logger.Info("created consumer", slog.String("stream", stream), slog.String("consumer", want.Durable))
		return nil
	case err != nil:
		return fmt.Errorf("look up consumer %s on %s: %w", want.Durable, stream, err)
	}
	diffs := consumerDiff(c.CachedInfo().Config, want)
	if len(diffs) == 0 {
		return nil
	}
	if _, err := js.UpdateConsumer(ctx, stream, want); err != nil {
		return fmt.Errorf("update consumer %s on %s (%v): %w", want.Durable, stream, diffs, err)
	}
	logger.Warn("updated consumer settings that drifted", slog.String("stream", stream), slog.String("consumer", want.Durable), slog.Any("changes", diffs))
	return nil
}

func consumerDiff(have, want jetstream.ConsumerConfig) []string {
	var d []string
	add := func(name string, h, w any) {
		if h != w {
			d = append(d, fmt.Sprintf("%s %v -> %v", name, h, w))
		}
	}
	add("filter_subject", have.FilterSubject, want.FilterSubject)
	add("ack_policy", have.AckPolicy, want.AckPolicy)
	add("ack_wait", have.AckWait, want.AckWait)
	add("max_deliver", have.MaxDeliver, want.MaxDeliver)
	add("max_ack_pending", have.MaxAckPending, want.MaxAckPending)
	return d
}

// Verify checks that the streams, consumers and bucket exist, for
// PROVISION=false. The error names everything that is missing.
func (t Topology) Verify(ctx context.Context, js jetstream.JetStream) error {
	var missing []error
	for _, sc := range []jetstream.StreamConfig{t.RequestStream, t.ResultStream} {
		if _, err := js.Stream(ctx, sc.Name); err != nil {
			missing = append(missing, lookupErr("stream "+sc.Name, err))
		}
	}
	for _, cc := range []jetstream.ConsumerConfig{t.Consumer, t.Advisories} {
		if _, err := js.Consumer(ctx, t.RequestStream.Name, cc.Durable); err != nil {
			missing = append(missing, lookupErr(fmt.Sprintf("consumer %s on stream %s", cc.Durable, t.RequestStream.Name), err))
		}
	}
	if t.Cache != nil {
		if _, err := js.KeyValue(ctx, t.Cache.Bucket); err != nil {
			missing = append(missing, lookupErr("key-value bucket "+t.Cache.Bucket+" (or set CACHE_TTL=0)", err))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("PROVISION=false and the topology is incomplete: %w", errors.Join(missing...))
	}
	return nil
}

func lookupErr(what string, err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%s: %w", what, ErrMissing)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Binder binds the service to its durable consumer, again and again if it
// has to: with provisioning on, a consumer deleted under the service is
// created again, starting after the last acknowledged request it saw (not
// from the start of the stream, which would answer old requests twice);
// with provisioning off, binding waits until an operator restores it.
type Binder struct {
	js        jetstream.JetStream
	topo      Topology
	provision bool
	logger    *slog.Logger
	floor     atomic.Uint64
}

// NewBinder returns the binder of t's consumer.
func NewBinder(js jetstream.JetStream, t Topology, provision bool, logger *slog.Logger) *Binder {
	return &Binder{js: js, topo: t, provision: provision, logger: logger}
}

// Bind returns the consumer, creating it again when it is gone and
// provisioning is on.
func (b *Binder) Bind(ctx context.Context) (jetstream.Consumer, error) {
	c, err := b.js.Consumer(ctx, b.topo.RequestStream.Name, b.topo.Consumer.Durable)
	if err == nil {
		b.Observe(c.CachedInfo())
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) || !b.provision {
		return nil, err
	}
	cfg := b.topo.Consumer
	if floor := b.floor.Load(); floor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
	}
	c, err = b.js.CreateOrUpdateConsumer(ctx, b.topo.RequestStream.Name, cfg)
	if err != nil {
		return nil, err
	}
	b.logger.Warn("consumer was missing and has been created again",
		slog.String("consumer", cfg.Durable), slog.Uint64("start_seq", max(cfg.OptStartSeq, 1)))
	return c, nil
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
