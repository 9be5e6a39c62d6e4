package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/timing"
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

// Topology is the shape of the streams and consumers the service uses.
type Topology struct {
	RequestStream jetstream.StreamConfig
	ResultStream  jetstream.StreamConfig
	Consumer      jetstream.ConsumerConfig
	Advisories    jetstream.ConsumerConfig // the safety net's, on the captured max-deliveries advisories
}

// TenantSubject is the wildcard of subject's per-tenant form, <subject>.<tenant>.
func TenantSubject(subject string) string { return subject + ".*" }

// NewTopology derives the topology from cfg.
func NewTopology(cfg *config.Config) Topology {
	advisory := MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName)
	stream := func(name, description string, maxAge, duplicates time.Duration, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{Name: name, Description: description, Subjects: subjects, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Discard: jetstream.DiscardOld, MaxAge: maxAge, Duplicates: duplicates, Replicas: cfg.StreamReplicas}
	}
	return Topology{
		RequestStream: stream(cfg.RequestStream, "alert-domains requests: Defender alert IDs to look up", RequestMaxAge, RequestDuplicateWindow,
			cfg.RequestSubject, TenantSubject(cfg.RequestSubject), advisory),
		ResultStream: stream(cfg.ResultStream, "alert-domains results: one per request", ResultMaxAge, min(cfg.DuplicateWindow(), ResultMaxAge),
			cfg.SuccessSubject, cfg.FailureSubject, TenantSubject(cfg.SuccessSubject), TenantSubject(cfg.FailureSubject)),
		Consumer: jetstream.ConsumerConfig{
			Durable:        cfg.ConsumerName,
			Description:    "alert-domains workers",
			FilterSubjects: []string{cfg.RequestSubject, TenantSubject(cfg.RequestSubject)},
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        cfg.AckWait,
			MaxDeliver:     cfg.MaxDeliver,
			MaxAckPending:  MaxAckPending(cfg.Concurrency),
			ReplayPolicy:   jetstream.ReplayInstantPolicy,
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
}

// MaxAckPending is the consumer's limit on unacknowledged messages: four
// replicas' busy workers and parked waits (consumer.DefaultMaxParked).
func MaxAckPending(concurrency int) int {
	return 4 * (concurrency + consumer.DefaultMaxParked)
}

// Provision creates what is missing and brings the settings the service
// owns in line with the configuration, logging every change.
func (t Topology) Provision(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) error {
	steps := []func() error{
		func() error { return EnsureStream(ctx, js, t.RequestStream, logger) },
		func() error { return EnsureStream(ctx, js, t.ResultStream, logger) },
		func() error { return t.provisionConsumer(ctx, js, t.Consumer, logger) },
		func() error { return t.provisionConsumer(ctx, js, t.Advisories, logger) },
	}
	for _, step := range steps {
		if err := Retrying(ctx, logger, step); err != nil {
			return err
		}
	}
	return nil
}

// Retrying runs step until it succeeds, fails for good, or has failed with
// consumer.Transient errors for 45 seconds.
func Retrying(ctx context.Context, logger *slog.Logger, step func() error) error {
	deadline := time.Now().Add(45 * time.Second)
	wait := 100 * time.Millisecond
	for {
		err := step()
		if err == nil || !consumer.Transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		logger.Warn("JetStream busy, trying again", slog.Any("error", err), slog.Duration("retry_in", wait))
		if !timing.Sleep(ctx, wait, nil) {
			return err
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// ErrConflict is wrapped when an existing stream or consumer differs from
// the configuration in what provisioning must not change.
var ErrConflict = errors.New("conflicts with the configuration")

// EnsureStream creates the stream want describes when it is missing. Of an
// existing one it changes only the replica count, raises a shorter duplicate
// window, and the per-tenant wildcards it lacks; other subjects or another
// retention are an ErrConflict.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, logger *slog.Logger) error {
	s, err := js.Stream(ctx, want.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		logger.Info("created stream", slog.String("stream", want.Name), slog.Any("subjects", want.Subjects), slog.Int("replicas", max(want.Replicas, 1)))
		return nil
	case err != nil:
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	added := missingTenantSubjects(have, want)
	merged, changes := have, []string(nil)
	merged.Subjects = append(slices.Clone(have.Subjects), added...)
	if err := streamConflict(merged, want); err != nil {
		return err
	}
	if len(added) > 0 {
		changes = append(changes, fmt.Sprintf("subjects added %q", added))
	}
	if want.Replicas > 0 && max(have.Replicas, 1) != want.Replicas {
		changes = append(changes, fmt.Sprintf("replicas %d -> %d", max(have.Replicas, 1), want.Replicas))
		merged.Replicas = want.Replicas
	}
	if have.Duplicates < want.Duplicates {
		changes = append(changes, fmt.Sprintf("duplicate_window %v -> %v", have.Duplicates, want.Duplicates))
		merged.Duplicates = want.Duplicates
	}
	if len(changes) == 0 {
		return nil
	}
	if _, err := js.UpdateStream(ctx, merged); err != nil {
		return fmt.Errorf("update stream %s (%s): %w", want.Name, strings.Join(changes, ", "), err)
	}
	logger.Info("updated stream", slog.String("stream", want.Name), slog.Any("changes", changes))
	return nil
}

// streamConflict reports a subject of want the stream does not capture, or another retention.
func streamConflict(have, want jetstream.StreamConfig) error {
	var d []string
	for _, w := range want.Subjects {
		if !covered(have.Subjects, w) {
			d = append(d, fmt.Sprintf("it does not capture subject %q (its subjects are %q)", w, have.Subjects))
		}
	}
	if have.Retention != want.Retention {
		d = append(d, fmt.Sprintf("its retention is %v, not %v", have.Retention, want.Retention))
	}
	if len(d) == 0 {
		return nil
	}
	return fmt.Errorf("stream %s exists and %w: %s; provisioning never changes an existing stream's subjects or retention (check REQUEST_SUBJECT, SUCCESS_SUBJECT, FAILURE_SUBJECT, CONSUMER_NAME and the stream names, or change the stream deliberately)",
		want.Name, ErrConflict, strings.Join(d, "; "))
}

// missingTenantSubjects are want's per-tenant wildcards whose plain subject
// have captures and they not: what a stream made before tenants lacks.
func missingTenantSubjects(have, want jetstream.StreamConfig) []string {
	var add []string
	for _, w := range want.Subjects {
		plain, ok := strings.CutSuffix(w, ".*")
		if !ok || !slices.Contains(want.Subjects, plain) || covered(have.Subjects, w) || !covered(have.Subjects, plain) {
			continue
		}
		add = append(add, w)
	}
	return add
}

func covered(patterns []string, subject string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return server.SubjectMatchesFilter(subject, p) })
}

// provisionConsumer creates a missing consumer only on a request stream that
// never stored a message (else the Binder does, where processing stopped),
// and of an existing one updates only the mutable settings.
func (t Topology) provisionConsumer(ctx context.Context, js jetstream.JetStream, want jetstream.ConsumerConfig, logger *slog.Logger) error {
	stream := t.RequestStream.Name
	c, err := js.Consumer(ctx, stream, want.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().State.LastSeq > 0 {
			return err
		}
		if _, err := js.CreateConsumer(ctx, stream, want); err != nil {
			return fmt.Errorf("create consumer %s on %s: %w", want.Durable, stream, err)
		}
		logger.Info("created consumer", slog.String("stream", stream), slog.String("consumer", want.Durable))
		return nil
	case err != nil:
		return fmt.Errorf("look up consumer %s on %s: %w", want.Durable, stream, err)
	}
	have := c.CachedInfo().Config
	if have.AckPolicy != want.AckPolicy {
		return fmt.Errorf("consumer %s on %s %w: its ack policy is %v, not %v (a consumer's ack policy cannot change; delete it deliberately to re-create it)",
			want.Durable, stream, ErrConflict, have.AckPolicy, want.AckPolicy)
	}
	diffs := consumerDiff(have, want)
	if len(diffs) == 0 {
		return nil
	}
	merged := have
	merged.FilterSubject, merged.FilterSubjects = want.FilterSubject, want.FilterSubjects
	merged.AckWait, merged.MaxDeliver, merged.MaxAckPending = want.AckWait, want.MaxDeliver, want.MaxAckPending
	merged.Description = want.Description
	if _, err := js.UpdateConsumer(ctx, stream, merged); err != nil {
		return fmt.Errorf("update consumer %s on %s (%v): %w", want.Durable, stream, diffs, err)
	}
	logger.Info("updated consumer settings", slog.String("stream", stream), slog.String("consumer", want.Durable), slog.Any("changes", diffs))
	return nil
}

func consumerDiff(have, want jetstream.ConsumerConfig) []string {
	var d []string
	add := func(name string, h, w any) {
		if h != w {
			d = append(d, fmt.Sprintf("%s %v -> %v", name, h, w))
		}
	}
	// The server reports "no limit" as -1 whether it was asked for 0 or -1.
	deliveries := func(n int) int { return cmp.Or(max(n, 0), -1) }
	add("filter_subjects", filters(have), filters(want))
	add("ack_wait", have.AckWait, want.AckWait)
	add("max_deliver", deliveries(have.MaxDeliver), deliveries(want.MaxDeliver))
	add("max_ack_pending", have.MaxAckPending, want.MaxAckPending)
	return d
}

// filters is the consumer's filter, FilterSubject or FilterSubjects, as one text.
func filters(c jetstream.ConsumerConfig) string {
	f := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		f = append(f, c.FilterSubject)
	}
	slices.Sort(f)
	return strings.Join(f, ",")
}

// Verify checks that the topology exists, for PROVISION=false, naming all that is missing.
func (t Topology) Verify(ctx context.Context, js jetstream.JetStream) error {
	var missing []error
	for _, sc := range []jetstream.StreamConfig{t.RequestStream, t.ResultStream} {
		s, err := js.Stream(ctx, sc.Name)
		if err != nil {
			missing = append(missing, lookupErr("stream "+sc.Name, err))
			continue
		}
		have := s.CachedInfo().Config
		missing = append(missing, streamConflict(have, sc), replicaConflict("stream "+sc.Name, have.Replicas, sc.Replicas))
	}
	for _, cc := range []jetstream.ConsumerConfig{t.Consumer, t.Advisories} {
		if _, err := js.Consumer(ctx, t.RequestStream.Name, cc.Durable); err != nil {
			missing = append(missing, lookupErr(fmt.Sprintf("consumer %s on stream %s", cc.Durable, t.RequestStream.Name), err))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return fmt.Errorf("PROVISION=false and the topology is incomplete: %w", err)
	}
	return nil
}

// replicaConflict reports a replica count other than STREAM_REPLICAS.
func replicaConflict(what string, have, want int) error {
	if want == 0 || max(have, 1) == want {
		return nil
	}
	return fmt.Errorf("%s has %d replicas and STREAM_REPLICAS is %d (set PROVISION=true to scale it, or STREAM_REPLICAS=%d): %w",
		what, max(have, 1), want, max(have, 1), ErrConflict)
}

func lookupErr(what string, err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("%s: %w", what, ErrMissing)
	}
	return fmt.Errorf("%s: %w", what, err)
}
