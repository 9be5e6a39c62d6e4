package ops

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// testEnv is an in-process JetStream server with the service's topology.
type testEnv struct {
	cfg *config.Config
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newTestEnv(t *testing.T, vars map[string]string) *testEnv {
	t.Helper()
	_, url := testenv.EmbeddedJetStream(t)
	env := map[string]string{"NATS_URL": url, "DEFENDER_RATE_LIMITS": "100/1m,1500/1h"}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	nc, js := testenv.Connect(t, url)
	if err := broker.NewTopology(cfg).Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return &testEnv{cfg: cfg, nc: nc, js: js}
}

// request stores a request on REQUEST_SUBJECT (with a tenant, its
// per-tenant form) and returns its sequence.
func (e *testEnv) request(t *testing.T, tenant, body string, h nats.Header) uint64 {
	t.Helper()
	subject := e.cfg.RequestSubject
	if tenant != "" {
		subject += "." + tenant
	}
	ack, err := e.js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: []byte(body), Header: h})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// result stores r as the service would for the request at seq, and returns
// its sequence in the result stream.
func (e *testEnv) result(t *testing.T, r *message.Result, seq uint64) uint64 {
	t.Helper()
	r.RequestSequence = seq
	subject := e.cfg.SuccessSubject
	if r.Status == message.StatusFailure {
		subject = e.cfg.FailureSubject
	}
	if r.Tenant != "" {
		subject += "." + r.Tenant
	}
	stored := time.Time{}
	if s, err := e.js.Stream(t.Context(), e.cfg.RequestStream); err == nil {
		if m, err := s.GetMsg(t.Context(), seq); err == nil {
			stored = m.Time
		}
	}
	msg, err := r.Message(subject, message.ResultMsgID(e.cfg.RequestStream, seq, stored), "")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func (e *testEnv) failure(t *testing.T, tenant, alertID string, kind message.Kind, seq uint64) uint64 {
	t.Helper()
	r := message.Failure(alertID, &connector.Error{Kind: kind, Message: string(kind)}, 1, time.Now())
	r.Tenant = tenant
	return e.result(t, r, seq)
}

func (e *testEnv) success(t *testing.T, tenant, alertID string, seq uint64) uint64 {
	t.Helper()
	r := message.Success(alertID, []string{"www.example.com"}, 1, false, time.Now())
	r.Tenant = tenant
	return e.result(t, r, seq)
}

// replay plans and republishes with opts and returns the events, in order.
func (e *testEnv) replay(t *testing.T, opts ReplayOptions) ([]ReplayEvent, ReplaySummary) {
	t.Helper()
	if opts.Rate == 0 {
		opts.Rate = 1000
	}
	r, err := NewReplay(t.Context(), e.js, e.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	items, err := r.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var events []ReplayEvent
	if err := r.Republish(t.Context(), items, func(ev ReplayEvent) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	return events, r.Summary()
}

// requestsAfter returns the request messages stored after seq.
func (e *testEnv) requestsAfter(t *testing.T, seq uint64) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(t.Context(), e.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for n := seq + 1; n <= s.CachedInfo().State.LastSeq; n++ {
		m, err := s.GetMsg(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func (e *testEnv) lastSeq(t *testing.T, stream string) uint64 {
	t.Helper()
	s, err := e.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}
