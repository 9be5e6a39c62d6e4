package handlers_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/message"
)

// One delivery of a request becomes one stored result: the Service decodes
// it, asks Defender (here the emulator), publishes the result with a
// message ID derived from the request, and says what to do with the request
// message. A second delivery of the same request stores nothing new.
func ExampleService_Handle() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "handlers-example")
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
	nc, err := nats.Connect(emb.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{"results.>"}}); err != nil {
		fmt.Println(err)
		return
	}

	emu := emulator.NewServer(emulator.WithSeedData())
	defer emu.Close()
	cred, _ := connector.NewCredential(emu.Credential())
	client, err := connector.New(connector.Graph, emu.URL, cred, emulator.GraphScope, connector.WithHTTPClient(emu.Client()))
	if err != nil {
		fmt.Println(err)
		return
	}
	svc, err := handlers.New(client, js, "results.success", "results.failure")
	if err != nil {
		fmt.Println(err)
		return
	}

	stored := time.Date(2026, 11, 27, 9, 14, 3, 0, time.UTC)
	for _, d := range []*consumer.Delivery{
		{Data: []byte("da637472900382838869_1364969609"), Stream: "REQUESTS", StreamSeq: 1, Stored: stored, NumDelivered: 1},
		{Data: []byte("da637472900382838869_1364969609"), Stream: "REQUESTS", StreamSeq: 1, Stored: stored, NumDelivered: 2},
		{Data: []byte("not an alert id"), Stream: "REQUESTS", StreamSeq: 2, Stored: stored, NumDelivered: 1},
	} {
		out := svc.Handle(ctx, d)
		fmt.Println(d.StreamSeq, out.Action, out.Result.Status, out.Result.Domains, out.Result.Kind(), "duplicate:", out.Duplicate)
	}
	// The stream dropped the second delivery's result: one result per request.
	info, _ := js.Stream(ctx, "RESULTS")
	fmt.Println("results stored:", info.CachedInfo().State.Msgs)
	fmt.Println(message.ResultMsgID("REQUESTS", 1, stored))
	// Output:
	// 1 ack success [www.example.com cdn.example.net]  duplicate: false
	// 1 ack success [www.example.com cdn.example.net]  duplicate: true
	// 2 terminate failure [] invalid_request duplicate: false
	// results stored: 2
	// result-REQUESTS-1-1795770843000000000
}
