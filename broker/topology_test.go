package broker_test

import (
	"bytes"
	"errors"
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
	if strings.Join(rc.Subjects, ",") != cfg.SuccessSubject+","+cfg.FailureSubject {
		t.Errorf("result subjects %v", rc.Subjects)
	}
	c, err := js.Consumer(t.Context(), cfg.RequestStream, cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.CachedInfo().Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != 20*time.Second || cc.MaxDeliver != 7 || cc.FilterSubject != cfg.RequestSubject || cc.MaxAckPending != broker.MaxAckPending(4) {
		t.Errorf("consumer config %+v", cc)
	}
	if _, err := js.KeyValue(t.Context(), broker.CacheBucketName(cfg)); err != nil {
		t.Errorf("cache bucket: %v", err)
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
