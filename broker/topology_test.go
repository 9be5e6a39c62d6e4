package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T, env map[string]string) (*config.Config, jetstream.JetStream) {
	t.Helper()
	emb, err := broker.StartEmbedded("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	_, js := testenv.Connect(t, emb.URL())
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, js
}

func TestProvisionCreatesAndRepairs(t *testing.T) {
	cfg, js := setup(t, map[string]string{"ACK_WAIT": "20s", "MAX_DELIVER": "7", "CONCURRENCY": "4"})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	topo := broker.NewTopology(cfg)
	if err := topo.Verify(t.Context(), js); !errors.Is(err, broker.ErrMissing) {
		t.Fatalf("Verify on an empty server: %v, want ErrMissing", err)
	}
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	if err := topo.Verify(t.Context(), js); err != nil {
		t.Fatalf("Verify after Provision: %v", err)
	}

	res, err := js.Stream(t.Context(), cfg.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	rc := res.CachedInfo().Config
	if rc.Duplicates < 2*time.Minute || rc.Duplicates < 20*time.Second*7 {
		t.Errorf("result duplicate window %v is shorter than the redelivery horizon", rc.Duplicates)
	}
	if want := cfg.SuccessSubject + "," + cfg.FailureSubject + "," + cfg.SuccessSubject + ".*," + cfg.FailureSubject + ".*"; strings.Join(rc.Subjects, ",") != want {
		t.Errorf("result subjects %v, want %s", rc.Subjects, want)
	}
	c, err := js.Consumer(t.Context(), cfg.RequestStream, cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.CachedInfo().Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != 20*time.Second || cc.MaxDeliver != 7 || strings.Join(cc.FilterSubjects, ",") != cfg.RequestSubject+","+cfg.RequestSubject+".*" || cc.MaxAckPending != broker.MaxAckPending(4) {
		t.Errorf("consumer config %+v", cc)
	}
	if _, err := js.KeyValue(t.Context(), cfg.ConsumerName+"-cache"); err == nil {
		t.Errorf("a cache bucket was created: the result cache reads the result stream")
	}

	// Drift: an operator changed the ack wait; provisioning puts it back and says so.
	cc.AckWait = time.Minute
	if _, err := js.UpdateConsumer(t.Context(), cfg.RequestStream, cc); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	c, _ = js.Consumer(t.Context(), cfg.RequestStream, cfg.ConsumerName)
	if got := c.CachedInfo().Config.AckWait; got != 20*time.Second {
		t.Errorf("drifted ack wait not repaired: %v", got)
	}
	if !strings.Contains(logs.String(), "ack_wait 1m0s -> 20s") {
		t.Errorf("drift not logged: %s", logs.String())
	}
}

func TestVerifyNamesEverythingMissing(t *testing.T) {
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	err := broker.NewTopology(cfg).Verify(t.Context(), js)
	if err == nil {
		t.Fatal("Verify on an empty server succeeded")
	}
	for _, name := range []string{cfg.RequestStream, cfg.ResultStream, cfg.ConsumerName, cfg.ConsumerName + "-max-deliveries"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestBinderRecreatesAfterAckFloor(t *testing.T) {
	cfg, js := setup(t, nil)
	logger := slog.New(slog.DiscardHandler)
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := js.Publish(t.Context(), cfg.RequestSubject, []byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	b := broker.NewBinder(js, topo, true, logger)
	c, err := b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Observe(info)
	if err := js.DeleteConsumer(t.Context(), cfg.RequestStream, cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	c, err = b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	batch, err = c.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for m := range batch.Messages() {
		meta, _ := m.Metadata()
		seqs = append(seqs, meta.Sequence.Stream)
	}
	if len(seqs) != 2 || seqs[0] != 4 {
		t.Errorf("re-created consumer delivered %v, want 4 and 5 (after the ack floor)", seqs)
	}

	// Without provisioning, a missing consumer stays missing.
	if err := js.DeleteConsumer(t.Context(), cfg.RequestStream, cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.NewBinder(js, topo, false, logger).Bind(t.Context()); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("Bind without provisioning: %v, want ErrConsumerNotFound", err)
	}
}

// TestRequestConsumerCreatedWhereProcessingStopped: with no acknowledgement
// floor seen by this process, a missing request consumer starts at the
// first stored request without a result, and the requests after it that
// have one are never handed on.
func TestRequestConsumerCreatedWhereProcessingStopped(t *testing.T) {
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	logger := slog.New(slog.DiscardHandler)
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := js.Publish(t.Context(), cfg.RequestSubject, []byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []int{1, 2, 3, 5, 6, 8} {
		if _, err := js.Publish(t.Context(), cfg.SuccessSubject, fmt.Appendf(nil, `{"status":"success","requestSequence":%d}`, seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.DeleteConsumer(t.Context(), cfg.RequestStream, cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	b := broker.NewBinder(js, topo, true, logger)
	c, err := b.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cc := c.CachedInfo().Config
	if cc.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || cc.OptStartSeq != 4 || cc.Metadata[broker.MetadataAnswered] != "5-6,8" {
		t.Fatalf("consumer from %v %d, answered %q; want by start sequence 4, answered 5-6,8", cc.DeliverPolicy, cc.OptStartSeq, cc.Metadata[broker.MetadataAnswered])
	}
	if got := fetchSeqs(t, c, 10); fmt.Sprint(got) != "[4 7 9 10]" {
		t.Errorf("delivered %v, want [4 7 9 10]", got)
	}
	// Another replica binding to the same consumer skips them as well:
	// everything is acknowledged.
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 4 || info.NumPending != 0 {
		t.Errorf("ack pending %d, pending %d; want the 4 handed on and nothing else", info.NumAckPending, info.NumPending)
	}
}

func fetchSeqs(t *testing.T, c jetstream.Consumer, n int) []uint64 {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, meta.Sequence.Stream)
	}
	return seqs
}

// TestProvisionKeepsSubjectsAndRetention: provisioning never changes an
// existing stream's subjects or retention; it names the difference. It may
// raise the duplicate window, and updates a consumer's settings without
// touching its deliver policy.
func TestProvisionKeepsSubjectsAndRetention(t *testing.T) {
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	logger := slog.New(slog.DiscardHandler)
	if err := broker.NewTopology(cfg).Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	typo, err := config.Load(config.MapEnv(map[string]string{"CACHE_TTL": "0", "SUCCESS_SUBJECT": "defender.alerts.domains.sucess"}))
	if err != nil {
		t.Fatal(err)
	}
	err = broker.NewTopology(typo).Provision(t.Context(), js, logger)
	if !errors.Is(err, broker.ErrConflict) || !strings.Contains(err.Error(), "defender.alerts.domains.sucess") || !strings.Contains(err.Error(), cfg.ResultStream) {
		t.Errorf("Provision with another success subject: %v", err)
	}
	if err := broker.NewTopology(typo).Verify(t.Context(), js); !errors.Is(err, broker.ErrConflict) {
		t.Errorf("Verify with another success subject: %v", err)
	}
	s, _ := js.Stream(t.Context(), cfg.ResultStream)
	if got := s.CachedInfo().Config.Subjects; len(got) != 4 || got[0] != cfg.SuccessSubject || got[1] != cfg.FailureSubject {
		t.Errorf("result subjects changed to %v", got)
	}

	// Subjects beyond ours are kept; the per-tenant wildcard missing is
	// added; a shorter duplicate window is raised.
	sc := s.CachedInfo().Config
	sc.Subjects, sc.Duplicates = []string{"defender.alerts.domains.failure", "defender.alerts.domains.success", "defender.alerts.domains.success.*", "other.results"}, time.Minute
	if _, err := js.UpdateStream(t.Context(), sc); err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(cfg).Provision(t.Context(), js, logger); err != nil {
		t.Fatalf("Provision with a wildcard subject: %v", err)
	}
	s, _ = js.Stream(t.Context(), cfg.ResultStream)
	if got := s.CachedInfo().Config; got.Duplicates != broker.NewTopology(cfg).ResultStream.Duplicates ||
		strings.Join(got.Subjects, ",") != "defender.alerts.domains.failure,defender.alerts.domains.success,defender.alerts.domains.success.*,other.results,defender.alerts.domains.failure.*" {
		t.Errorf("result stream after provisioning: subjects %v, duplicate window %v", got.Subjects, got.Duplicates)
	}

	// Another retention policy.
	if err := js.DeleteStream(t.Context(), cfg.ResultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: cfg.ResultStream, Subjects: []string{cfg.SuccessSubject, cfg.FailureSubject}, Retention: jetstream.InterestPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(cfg).Provision(t.Context(), js, logger); !errors.Is(err, broker.ErrConflict) || !strings.Contains(err.Error(), "retention") {
		t.Errorf("Provision over another retention: %v", err)
	}

	// A consumer that starts at a sequence keeps it when settings change.
	if err := js.DeleteConsumer(t.Context(), cfg.RequestStream, cfg.ConsumerName); err != nil {
		t.Fatal(err)
	}
	cc := broker.NewTopology(cfg).Consumer
	cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, 42
	if _, err := js.CreateConsumer(t.Context(), cfg.RequestStream, cc); err != nil {
		t.Fatal(err)
	}
	changed, err := config.Load(config.MapEnv(map[string]string{"CACHE_TTL": "0", "ACK_WAIT": "45s", "MAX_DELIVER": "3", "CONCURRENCY": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(changed).Provision(t.Context(), js, logger); err != nil && !strings.Contains(err.Error(), "retention") {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), cfg.ResultStream); err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(changed).Provision(t.Context(), js, logger); err != nil {
		t.Fatalf("Provision with changed consumer settings: %v", err)
	}
	c, err := js.Consumer(t.Context(), cfg.RequestStream, cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	got := c.CachedInfo().Config
	if got.AckWait != 45*time.Second || got.MaxDeliver != 3 || got.MaxAckPending != broker.MaxAckPending(2) || got.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || got.OptStartSeq != 42 {
		t.Errorf("consumer after the change: %+v", got)
	}
}

// TestAdvisoryConsumerCreatedWhereItStopped: the safety net's consumer,
// missing, starts at the first advisory whose request has no result and
// skips the advisories after it whose request has one.
func TestAdvisoryConsumerCreatedWhereItStopped(t *testing.T) {
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	logger := slog.New(slog.DiscardHandler)
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := js.Publish(t.Context(), cfg.RequestSubject, []byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	subject := broker.MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName)
	for _, req := range []int{3, 2, 4} { // advisories 5, 6, 7
		adv := fmt.Sprintf(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":%q,"consumer":%q,"stream_seq":%d,"deliveries":10}`, cfg.RequestStream, cfg.ConsumerName, req)
		if _, err := js.Publish(t.Context(), subject, []byte(adv)); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range []int{1, 2} {
		if _, err := js.Publish(t.Context(), cfg.FailureSubject, fmt.Appendf(nil, `{"status":"failure","requestSequence":%d}`, req)); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.DeleteConsumer(t.Context(), cfg.RequestStream, topo.Advisories.Durable); err != nil {
		t.Fatal(err)
	}
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	adv := topo
	adv.Consumer = topo.Advisories
	c, err := broker.NewBinder(js, adv, true, logger).Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cc := c.CachedInfo().Config; cc.OptStartSeq != 5 || cc.Metadata[broker.MetadataAnswered] != "6" {
		t.Errorf("advisory consumer from %d, answered %q; want 5 and 6", cc.OptStartSeq, cc.Metadata[broker.MetadataAnswered])
	}
	if got := fetchSeqs(t, c, 10); fmt.Sprint(got) != "[5 7]" {
		t.Errorf("delivered advisories %v, want [5 7] (requests 3 and 4, without a result)", got)
	}
}

// TestMissingConsumersRecreatedWithoutWaiting: re-creating the missing
// request and advisory consumers reads what is stored and stops there; it
// does not wait for more, while no replica takes a request.
func TestMissingConsumersRecreatedWithoutWaiting(t *testing.T) {
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	logger := slog.New(slog.DiscardHandler)
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := js.Publish(t.Context(), cfg.RequestSubject, []byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	adv := fmt.Sprintf(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":%q,"consumer":%q,"stream_seq":3,"deliveries":10}`, cfg.RequestStream, cfg.ConsumerName)
	if _, err := js.Publish(t.Context(), broker.MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName), []byte(adv)); err != nil {
		t.Fatal(err)
	}
	for _, req := range []int{1, 2} {
		if _, err := js.Publish(t.Context(), cfg.SuccessSubject, fmt.Appendf(nil, `{"status":"success","requestSequence":%d}`, req)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{topo.Consumer.Durable, topo.Advisories.Durable} {
		if err := js.DeleteConsumer(t.Context(), cfg.RequestStream, name); err != nil {
			t.Fatal(err)
		}
	}
	advTopo := topo
	advTopo.Consumer = topo.Advisories
	for _, tp := range []broker.Topology{topo, advTopo} {
		start := time.Now()
		c, err := broker.NewBinder(js, tp, true, logger).Bind(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("consumer %s re-created in %v, want at once", c.CachedInfo().Name, took)
		}
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no suitable peers while a cluster starts", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{"leader election", &jetstream.APIError{Code: 503, Description: "JetStream system temporarily unavailable"}, true},
		{"timeout", context.DeadlineExceeded, true},
		{"a bad request", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest}, false},
		{"stream name in use", jetstream.ErrStreamNameAlreadyInUse, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := broker.Transient(fmt.Errorf("create stream: %w", tc.err)); got != tc.want {
				t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestProvisionAddsTenantSubjectsToOlderStreams: streams and a consumer
// made before tenants existed capture only the plain subjects; provisioning
// adds the per-tenant wildcards (keeping every subject they had) and widens
// the consumer's filter, so a request published to <REQUEST_SUBJECT>.<name>
// is stored and delivered. PROVISION=false names what is missing instead.
func TestProvisionAddsTenantSubjectsToOlderStreams(t *testing.T) {
	cfg, js := setup(t, map[string]string{"CACHE_TTL": "0"})
	logger := slog.New(slog.DiscardHandler)
	old := broker.NewTopology(cfg)
	old.RequestStream.Subjects = []string{cfg.RequestSubject, broker.MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName)}
	old.ResultStream.Subjects = []string{cfg.SuccessSubject, cfg.FailureSubject}
	old.Consumer.FilterSubjects, old.Consumer.FilterSubject = nil, cfg.RequestSubject
	for _, sc := range []jetstream.StreamConfig{old.RequestStream, old.ResultStream} {
		if _, err := js.CreateStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateConsumer(t.Context(), cfg.RequestStream, old.Consumer); err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(cfg).Verify(t.Context(), js); !errors.Is(err, broker.ErrConflict) || !strings.Contains(err.Error(), cfg.RequestSubject+".*") {
		t.Errorf("Verify over streams without tenant subjects: %v", err)
	}
	if err := broker.NewTopology(cfg).Provision(t.Context(), js, logger); err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[string]string{
		cfg.RequestStream: cfg.RequestSubject + "," + broker.MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName) + "," + cfg.RequestSubject + ".*",
		cfg.ResultStream:  cfg.SuccessSubject + "," + cfg.FailureSubject + "," + cfg.SuccessSubject + ".*," + cfg.FailureSubject + ".*",
	} {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(s.CachedInfo().Config.Subjects, ","); got != want {
			t.Errorf("stream %s subjects %s, want %s", stream, got, want)
		}
	}
	if err := broker.NewTopology(cfg).Verify(t.Context(), js); err != nil {
		t.Errorf("Verify after Provision: %v", err)
	}
	if _, err := js.Publish(t.Context(), cfg.RequestSubject+".contoso", []byte("a1")); err != nil {
		t.Fatalf("publish to a tenant's request subject: %v", err)
	}
	c, err := js.Consumer(t.Context(), cfg.RequestStream, cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Subject())
	}
	if len(got) != 1 || got[0] != cfg.RequestSubject+".contoso" {
		t.Errorf("consumer delivered %v, want the tenant's request", got)
	}
}

// The claims stream lets the server decide which replica makes a call: one
// claim per subject, a second refused, each gone after the hold; created
// by ProvisionFlights, brought to a new hold, and absent with
// COALESCE_SCOPE=process.
func TestProvisionFlights(t *testing.T) {
	cfg, js := setup(t, map[string]string{"DEFENDER_TIMEOUT": "5s", "RETRY_INITIAL_INTERVAL": "2s"})
	topo := broker.NewTopology(cfg)
	if err := topo.ProvisionFlights(t.Context(), js, false); !errors.Is(err, broker.ErrMissing) {
		t.Fatalf("ProvisionFlights(provision false) on an empty server: %v, want ErrMissing", err)
	}
	if err := topo.ProvisionFlights(t.Context(), js, true); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), cfg.ConsumerName+"-flights")
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.MaxAge != 12*time.Second || c.MaxMsgsPerSubject != 1 || c.Discard != jetstream.DiscardNew || !c.DiscardNewPerSubject ||
		c.Storage != jetstream.MemoryStorage || c.Replicas != 1 {
		t.Errorf("claims stream %+v", c)
	}
	subject := broker.FlightClaimSubjects(cfg) + ".abc"
	if _, err := js.Publish(t.Context(), subject, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), subject, nil); err == nil {
		t.Error("a second claim on one subject was accepted")
	}
	if err := topo.ProvisionFlights(t.Context(), js, false); err != nil {
		t.Errorf("ProvisionFlights(provision false) with the stream: %v", err)
	}

	cfg.DefenderTimeout = 30 * time.Second
	if err := broker.NewTopology(cfg).ProvisionFlights(t.Context(), js, true); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.Config.MaxAge != 62*time.Second {
		t.Errorf("after DEFENDER_TIMEOUT=30s: %v (%v), want a hold of 62s", info.Config.MaxAge, err)
	}

	cfg.CoalesceScope = "process"
	if topo := broker.NewTopology(cfg); topo.Flights != nil || topo.ProvisionFlights(t.Context(), js, true) != nil {
		t.Errorf("COALESCE_SCOPE=process: claims stream %+v", topo.Flights)
	}
}
