package safetynet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/safetynet"
	"github.com/alert-domains/alert-domains/tenants"
)

// A request that ran out of deliveries without a result still gets one.
// The server's max-deliveries advisory (published here by hand, as the
// server would after MAX_DELIVER deliveries) is captured by the request
// stream; the Listener reads it, reads the request back, and hands it to
// the request handler as a delivery out of deliveries: with no result
// stored and no recent success for its alert, it stores an unavailable
// failure, under the message ID every delivery of that request uses, and
// asks no one.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	dir, err := os.MkdirTemp("", "safetynet-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	emb, err := broker.StartEmbedded("127.0.0.1:0", dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer emb.Shutdown()
	cfg, err := config.Load(config.MapEnv(map[string]string{"NATS_URL": emb.URL()}))
	if err != nil {
		fmt.Println(err)
		return
	}
	nc, err := broker.Connect(ctx, cfg, "", "safetynet example", logger)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	topo := broker.NewTopology(cfg)
	if err := topo.Provision(ctx, js, logger); err != nil {
		fmt.Println(err)
		return
	}
	failures, err := nc.SubscribeSync(cfg.FailureSubject)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The request handler of the service, as `serve` builds it.
	subjects := message.Subjects{Request: cfg.RequestSubject, Success: cfg.SuccessSubject, Failure: cfg.FailureSubject, Plain: config.DefaultTenant}
	answers := handlers.NewAnswers(handlers.AnswersConfig{JS: js, RequestStream: cfg.RequestStream, ResultStream: cfg.ResultStream,
		Subjects: subjects, Consumer: cfg.ConsumerName, CacheTTL: cfg.CacheTTL})
	answersDone := make(chan error, 1)
	go func() { answersDone <- answers.Run(ctx) }()
	defer func() { cancel(); <-answersDone }()
	<-answers.Ready()
	set, err := tenants.New([]config.Tenant{{Name: config.DefaultTenant, API: connector.Graph}}, func(*config.Tenant) (tenants.Lookup, error) {
		return nil, nil // never asked: a request out of deliveries is not sent to Microsoft
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	svc, err := handlers.New(handlers.Config{JS: js, Answers: answers, Tenants: tenants.NewRouter(set), Subjects: subjects})
	if err != nil {
		fmt.Println(err)
		return
	}

	req, err := js.Publish(ctx, cfg.RequestSubject, []byte(`{"alertId": "da637472900382838869_1364969609", "correlationId": "case-42"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	advisory, _ := json.Marshal(safetynet.Advisory{
		Type:       safetynet.AdvisoryType,
		Stream:     cfg.RequestStream,
		Consumer:   cfg.ConsumerName,
		StreamSeq:  req.Sequence,
		Deliveries: uint64(cfg.MaxDeliver),
	})
	if _, err := js.Publish(ctx, broker.MaxDeliveriesSubject(cfg.RequestStream, cfg.ConsumerName), advisory); err != nil {
		fmt.Println(err)
		return
	}

	listener, err := safetynet.New(safetynet.Config{
		JS: js, RequestStream: cfg.RequestStream, Consumer: cfg.ConsumerName, Handler: svc.Handle, Logger: logger,
		Bind:    broker.NewBinder(js, cfg.RequestStream, topo.Advisories, true, nil, logger).Bind,
		AckWait: topo.Advisories.AckWait, ShutdownTimeout: time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- listener.Run(runCtx) }()
	msg, err := failures.NextMsg(10 * time.Second)
	stop()
	if runErr := <-done; runErr != nil {
		fmt.Println(runErr)
	}
	if err != nil {
		fmt.Println(err)
		return
	}

	var res message.Result
	if err := json.Unmarshal(msg.Data, &res); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.AlertID, res.CorrelationID, res.RequestSequence, res.Delivery, res.Attempts)
	fmt.Println(res.Error.Kind, res.Error.Message)
	s, _ := js.Stream(ctx, cfg.RequestStream)
	stored, _ := s.GetMsg(ctx, req.Sequence)
	fmt.Println(msg.Header.Get(message.HeaderMsgID) == message.ResultMsgID(cfg.RequestStream, req.Sequence, stored.Time))
	// Output:
	// failure da637472900382838869_1364969609 case-42 1 10 0
	// unavailable delivery limit reached: 10 deliveries ended without a result
	// true
}
