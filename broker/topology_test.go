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
	"github.com/alert-domains/alert-domains/consumer"
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
			if got := consumer.Transient(fmt.Errorf("create stream: %w", tc.err)); got != tc.want {
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
