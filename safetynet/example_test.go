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
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/safetynet"
)

// A request that ran out of deliveries without a result still gets one.
// The server's max-deliveries advisory (published here by hand, as the
// server would after MAX_DELIVER deliveries) is captured by the request
// stream; the Listener reads it and publishes the request's failure result,
// with the message ID every delivery of that request would have used.
func Example() {
	ctx := context.Background()
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

	listener, err := safetynet.New(js, topo, cfg.FailureSubject, safetynet.WithLogger(logger))
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
	fmt.Println(res.Status, res.AlertID, res.CorrelationID, res.RequestSequence, res.Delivery)
	fmt.Println(res.Error.Kind, res.Error.Message)
	fmt.Println(msg.Header.Get(message.HeaderMsgID) == message.ResultMsgID(cfg.RequestStream, req.Sequence, storedAt(ctx, js, cfg.RequestStream, req.Sequence)))
	// Output:
	// failure da637472900382838869_1364969609 case-42 1 10
	// unavailable delivery limit reached: 10 deliveries ended without a result
	// true
}

// storedAt is when stream stored the message at seq.
func storedAt(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) time.Time {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return time.Time{}
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return time.Time{}
	}
	return m.Time
}
