package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
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
	// CacheTTL is how long a success result in ResultStream answers
	// repeated requests for its alert (the result cache reads them back:
	// handlers.ResultCache); 0 when CACHE_TTL is 0.
	CacheTTL time.Duration
	// Answers is the bucket of the records of stored results, one per
	// request message, kept as long as the request stream keeps requests.
	Answers jetstream.KeyValueConfig
	// Flights is the stream of the claims of Defender calls in progress,
	// shared by the replicas (see FlightsStream).
	Flights *jetstream.StreamConfig
}

// FlightClaimSubjects is the prefix of the claims' subjects (one per cache
// key: the prefix, a dot, handlers.FlightToken of the key), and
// FlightAnswerSubjects that of the plain NATS subjects the holders of the
// claims publish their answers on.
func FlightClaimSubjects(cfg *config.Config) string {
	return "_ALERT_DOMAINS.FLIGHTS." + cfg.RequestStream + "." + cfg.ConsumerName
}

// FlightAnswerSubjects: see FlightClaimSubjects.
func FlightAnswerSubjects(cfg *config.Config) string {
	return "_ALERT_DOMAINS.FLIGHT_ANSWERS." + cfg.RequestStream + "." + cfg.ConsumerName
}

// FlightHold is how long a claim holds its call: two attempts and the
// first backoff wait between them. A lookup that takes longer (more
// retries, a long wait for the quota) may be asked again by another
// replica after it; a replica that died holding a claim delays the others
// by that much at most.
func FlightHold(cfg *config.Config) time.Duration {
	return 2*cfg.DefenderTimeout + cfg.RetryInitialInterval
}

// FlightsStream is the claims stream: one message per subject at most, a
// second refused (so that the server decides who calls), dropped after
// FlightHold. Memory storage: a claim lives for one call, and one lost
// with a server costs at most one more Defender call, never a request.
// Replicated like every other stream, so that the loss of a node leaves it
// usable (a stream whose only peer is gone stays unusable until an
// operator removes it).
func FlightsStream(cfg *config.Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 cfg.ConsumerName + "-flights",
		Description:          "alert-domains Defender calls in progress, one claim per alert, shared by the replicas",
		Subjects:             []string{FlightClaimSubjects(cfg) + ".*"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.MemoryStorage,
		Replicas:             cfg.StreamReplicas,
		MaxMsgsPerSubject:    1,
		MaxAge:               FlightHold(cfg),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           1024,
		AllowDirect:          true,
	}
}

// AnswersBucketName is the key-value bucket that records which requests have
// their result stored.
func AnswersBucketName(cfg *config.Config) string {
	return cfg.ConsumerName + "-answered"
}

// TenantSubject is the wildcard that captures subject's per-tenant form,
// <subject>.<tenant>: requests a publisher names its tenant by, and the
// results of such requests.
func TenantSubject(subject string) string { return subject + ".*" }

// NewTopology derives the topology from cfg. Every stream and bucket has
// cfg.StreamReplicas replicas; the consumers take their stream's.
func NewTopology(cfg *config.Config) Topology {
	advisory := MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName)
	t := Topology{
		RequestStream: jetstream.StreamConfig{
			Name:        cfg.RequestStream,
			Description: "alert-domains requests: Defender alert IDs to look up",
			Subjects:    []string{cfg.RequestSubject, TenantSubject(cfg.RequestSubject), advisory},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      RequestMaxAge,
			Duplicates:  RequestDuplicateWindow,
			Replicas:    cfg.StreamReplicas,
		},
		ResultStream: jetstream.StreamConfig{
			Name:        cfg.ResultStream,
			Description: "alert-domains results: one per request",
			Subjects:    []string{cfg.SuccessSubject, cfg.FailureSubject, TenantSubject(cfg.SuccessSubject), TenantSubject(cfg.FailureSubject)},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      ResultMaxAge,
			Duplicates:  min(cfg.DuplicateWindow(), ResultMaxAge),
			Replicas:    cfg.StreamReplicas,
		},
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
	t.Answers = jetstream.KeyValueConfig{
		Bucket:      AnswersBucketName(cfg),
		Description: "alert-domains requests whose result is stored: request -> result sequence",
		TTL:         RequestMaxAge,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.StreamReplicas,
	}
	f := FlightsStream(cfg)
	t.Flights = &f
	t.CacheTTL = cfg.CacheTTL
	return t
}

// ProvisionFlights creates the claims stream, or brings an existing one to
// the configuration (it holds nothing worth keeping); with provision false
// it only checks that the stream exists. Its error is no reason to stop:
// calls are then not shared between replicas.
func (t Topology) ProvisionFlights(ctx context.Context, js jetstream.JetStream, provision bool) error {
	if t.Flights == nil {
		return nil
	}
	if !provision {
		if _, err := js.Stream(ctx, t.Flights.Name); err != nil {
			return lookupErr("stream "+t.Flights.Name, err)
		}
		return nil
	}
	if _, err := js.CreateOrUpdateStream(ctx, *t.Flights); err != nil {
		return fmt.Errorf("stream %s: %w", t.Flights.Name, err)
	}
	return nil
}

// MaxAckPending is the consumer's limit on unacknowledged messages: the
// work of four replicas with the same concurrency, each with its workers
// busy and as many messages parked, waiting for their quota without a
// worker, as the consumer package lets wait (consumer.DefaultMaxParked).
func MaxAckPending(concurrency int) int {
	return 4 * (concurrency + consumer.DefaultMaxParked)
}

// Provision creates what is missing and brings the settings the service
// owns in line with the configuration: the replica count of every stream
// and bucket, a longer duplicate window, and the consumer's mutable settings
// (ack wait, deliveries, pending limit). It never changes an existing
// stream's subjects or retention, nor a consumer's deliver policy: such a
// difference is an error that names it (ErrConflict). The one exception is
// a stream made before tenants existed: the per-tenant wildcards
// (TenantSubject) of subjects it captures are added to it, keeping every
// subject it had. It logs what it
// created and every setting it changed.
func (t Topology) Provision(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) error {
	steps := []func() error{
		func() error { return EnsureStream(ctx, js, t.RequestStream, logger) },
		func() error { return EnsureStream(ctx, js, t.ResultStream, logger) },
		func() error { return t.provisionDurable(ctx, js, t.Consumer, t.CreateRequestConsumer, logger) },
		func() error { return t.provisionDurable(ctx, js, t.Advisories, t.CreateAdvisoryConsumer, logger) },
		func() error { return EnsureKeyValue(ctx, js, t.Answers, logger) },
	}
	for _, step := range steps {
		if err := Retrying(ctx, logger, step); err != nil {
			return err
		}
	}
	return nil
}

// provisionRetryFor bounds how long provisioning waits out a cluster that
// is electing a leader or moving a stream's peers.
const provisionRetryFor = 45 * time.Second

// Retrying runs step until it succeeds, fails for good, or has failed with
// transient errors for 45 seconds: errors a JetStream cluster answers while
// it elects a leader or adds a stream's replicas ("insufficient resources",
// no leader, time-outs). Every step of provisioning is safe to repeat.
func Retrying(ctx context.Context, logger *slog.Logger, step func() error) error {
	deadline := time.Now().Add(provisionRetryFor)
	wait := 100 * time.Millisecond
	for {
		err := step()
		if err == nil || !Transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		logger.Warn("JetStream busy, trying again", slog.Any("error", err), slog.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// errCodeNoSuitablePeers is the server's "no suitable peers for placement"
// (a peer it has not heard from yet counts as offline).
const errCodeNoSuitablePeers jetstream.ErrorCode = 10005

// Transient reports whether err is one that a JetStream cluster gives while
// it elects a leader, moves peers or has not yet heard from every peer
// after a start, and that a later attempt may not get.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408 || apiErr.ErrorCode == errCodeNoSuitablePeers
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// ErrConflict is wrapped when an existing stream or consumer differs from
// the configuration in a way provisioning must not change (a stream's
// subjects or retention, a consumer's ack policy), or, with PROVISION=false,
// when its replica count differs from STREAM_REPLICAS.
var ErrConflict = errors.New("conflicts with the configuration")

// EnsureStream creates the stream want describes when it is missing. An
// existing stream keeps its subjects, retention and every setting operators
// may tune; only its replica count is brought to want.Replicas and its
// duplicate window raised to want.Duplicates, and the per-tenant wildcards
// of want that it lacks are added to its subjects (a superset that keeps
// every subject it had). When its subjects do not capture every other
// subject of want, or its retention policy differs, nothing is changed and
// the error (wrapping ErrConflict) names the difference.
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
	if err := streamConflict(withSubjects(have, added), want); err != nil {
		return err
	}
	merged, changes := have, []string(nil)
	if len(added) > 0 {
		changes = append(changes, fmt.Sprintf("subjects added %q", added))
		merged.Subjects = append(slices.Clone(have.Subjects), added...)
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

// streamConflict reports what provisioning may not change: a subject of want
// that the existing stream does not capture, or another retention policy.
func streamConflict(have, want jetstream.StreamConfig) error {
	var d []string
	for _, w := range want.Subjects {
		if !slices.ContainsFunc(have.Subjects, func(h string) bool { return subjectCovers(h, w) }) {
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

// missingTenantSubjects are the per-tenant wildcards of want that have does
// not capture while it captures their plain subject: what a stream made
// before tenants existed lacks.
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
	return slices.ContainsFunc(patterns, func(h string) bool { return subjectCovers(h, subject) })
}

func withSubjects(c jetstream.StreamConfig, extra []string) jetstream.StreamConfig {
	c.Subjects = append(slices.Clone(c.Subjects), extra...)
	return c
}

// subjectCovers reports whether the stream subject pattern captures the
// literal subject.
func subjectCovers(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

// EnsureKeyValue creates the bucket when it is missing, and otherwise
// brings its replica count and TTL to want (both are the service's own
// settings of its buckets).
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig, logger *slog.Logger) error {
	s, err := js.Stream(ctx, kvStreamName(want.Bucket))
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateKeyValue(ctx, want); err != nil {
			return fmt.Errorf("create key-value bucket %s: %w", want.Bucket, err)
		}
		logger.Info("created key-value bucket", slog.String("bucket", want.Bucket), slog.Int("replicas", max(want.Replicas, 1)))
		return nil
	case err != nil:
		return fmt.Errorf("look up key-value bucket %s: %w", want.Bucket, err)
	}
	have := s.CachedInfo().Config
	var changes []string
	if max(have.Replicas, 1) != max(want.Replicas, 1) {
		changes = append(changes, fmt.Sprintf("replicas %d -> %d", max(have.Replicas, 1), max(want.Replicas, 1)))
	}
	if have.MaxAge != want.TTL {
		changes = append(changes, fmt.Sprintf("ttl %v -> %v", have.MaxAge, want.TTL))
	}
	if len(changes) == 0 {
		return nil
	}
	if _, err := js.UpdateKeyValue(ctx, want); err != nil {
		return fmt.Errorf("update key-value bucket %s (%s): %w", want.Bucket, strings.Join(changes, ", "), err)
	}
	logger.Info("updated key-value bucket", slog.String("bucket", want.Bucket), slog.Any("changes", changes))
	return nil
}

func kvStreamName(bucket string) string { return "KV_" + bucket }

// provisionDurable creates a missing consumer where processing stopped
// (with create), and otherwise updates its mutable settings.
func (t Topology) provisionDurable(ctx context.Context, js jetstream.JetStream, want jetstream.ConsumerConfig,
	create func(context.Context, jetstream.JetStream, uint64, *slog.Logger) (jetstream.Consumer, error), logger *slog.Logger) error {
	_, err := js.Consumer(ctx, t.RequestStream.Name, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		_, err = create(ctx, js, 0, logger)
		return err
	}
	if err != nil {
		return fmt.Errorf("look up consumer %s on %s: %w", want.Durable, t.RequestStream.Name, err)
	}
	return provisionConsumer(ctx, js, t.RequestStream.Name, want, logger)
}

// provisionConsumer creates the consumer when it is missing, and otherwise
// updates only the settings a consumer can change (ack wait, deliveries,
// pending limit, filter, description), keeping its deliver policy, start
// sequence and metadata as they are.
func provisionConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig, logger *slog.Logger) error {
	c, err := js.Consumer(ctx, stream, want.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
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
	deliveries := func(n int) int {
		if n <= 0 {
			return -1
		}
		return n
	}
	add("filter_subjects", filters(have), filters(want))
	add("ack_wait", have.AckWait, want.AckWait)
	add("max_deliver", deliveries(have.MaxDeliver), deliveries(want.MaxDeliver))
	add("max_ack_pending", have.MaxAckPending, want.MaxAckPending)
	return d
}

// filters is the consumer's filter as one comparable text, whether it was
// given as FilterSubject or FilterSubjects (the server reports one filter
// as FilterSubject).
func filters(c jetstream.ConsumerConfig) string {
	f := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		f = append(f, c.FilterSubject)
	}
	slices.Sort(f)
	return strings.Join(f, ",")
}

// Verify checks that the streams, consumers and bucket exist, for
// PROVISION=false. The error names everything that is missing.
func (t Topology) Verify(ctx context.Context, js jetstream.JetStream) error {
	var missing []error
	for _, sc := range []jetstream.StreamConfig{t.RequestStream, t.ResultStream} {
		s, err := js.Stream(ctx, sc.Name)
		if err != nil {
			missing = append(missing, lookupErr("stream "+sc.Name, err))
			continue
		}
		have := s.CachedInfo().Config
		if err := streamConflict(have, sc); err != nil {
			missing = append(missing, err)
		}
		if err := replicaConflict("stream "+sc.Name, have.Replicas, sc.Replicas); err != nil {
			missing = append(missing, err)
		}
	}
	for _, cc := range []jetstream.ConsumerConfig{t.Consumer, t.Advisories} {
		if _, err := js.Consumer(ctx, t.RequestStream.Name, cc.Durable); err != nil {
			missing = append(missing, lookupErr(fmt.Sprintf("consumer %s on stream %s", cc.Durable, t.RequestStream.Name), err))
		}
	}
	if s, err := js.Stream(ctx, kvStreamName(t.Answers.Bucket)); err != nil {
		missing = append(missing, lookupErr("key-value bucket "+t.Answers.Bucket, err))
	} else if err := replicaConflict("key-value bucket "+t.Answers.Bucket, s.CachedInfo().Config.Replicas, t.Answers.Replicas); err != nil {
		missing = append(missing, err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("PROVISION=false and the topology is incomplete: %w", errors.Join(missing...))
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
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%s: %w", what, ErrMissing)
	}
	return fmt.Errorf("%s: %w", what, err)
}
