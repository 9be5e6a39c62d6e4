package handlers_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

// One delivery of a request becomes one stored result. The Answers reads
// the result stream (it knows which requests have their result, and
// caches successes); the Service decodes the request, finds its tenant,
// asks that tenant's API (here the emulator), stores the result under a
// message ID of the request, and says what to do with the request
// message. A second delivery of the same request stores nothing new, and
// a second request for the alert is answered from the cache.
func ExampleService_Handle() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	subjects := message.Subjects{Request: "requests", Success: "results.success", Failure: "results.failure", Plain: config.DefaultTenant}
	for _, sc := range []jetstream.StreamConfig{
		{Name: "REQUESTS", Subjects: []string{"requests", "requests.*"}},
		{Name: "RESULTS", Subjects: []string{"results.success", "results.failure", "results.success.*", "results.failure.*"}, Duplicates: 5 * time.Minute},
	} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			fmt.Println(err)
			return
		}
	}

	emu := emulator.NewServer(emulator.Config{SeedData: true})
	defer emu.Close()
	set, err := tenants.New([]config.Tenant{{Name: config.DefaultTenant, API: connector.Graph}}, func(*config.Tenant) (tenants.Lookup, error) {
		cred, err := connector.NewCredential(emu.Credential())
		if err != nil {
			return nil, err
		}
		return connector.New(connector.Graph, emu.URL, cred, emulator.GraphScope, connector.WithHTTPClient(emu.Client()))
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	answers := handlers.NewAnswers(handlers.AnswersConfig{JS: js, RequestStream: "REQUESTS", ResultStream: "RESULTS",
		Subjects: subjects, Consumer: "alert-domains", CacheTTL: time.Hour})
	done := make(chan error, 1)
	go func() { done <- answers.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-answers.Ready()
	svc, err := handlers.New(handlers.Config{JS: js, Answers: answers, Tenants: tenants.NewRouter(set),
		Subjects: subjects})
	if err != nil {
		fmt.Println(err)
		return
	}

	// delivery is the first delivery of a request stored now, as the
	// request consumer hands it on.
	delivery := func(body string) *consumer.Delivery {
		ack, err := js.Publish(ctx, "requests", []byte(body))
		if err != nil {
			panic(err)
		}
		s, _ := js.Stream(ctx, "REQUESTS")
		m, err := s.GetMsg(ctx, ack.Sequence)
		if err != nil {
			panic(err)
		}
		return &consumer.Delivery{Subject: m.Subject, Data: m.Data, Header: m.Header, Stream: "REQUESTS",
			StreamSeq: m.Sequence, Stored: m.Time, NumDelivered: 1, MaxDeliver: 10}
	}
	first := delivery("da637472900382838869_1364969609")
	redelivered := *first
	redelivered.NumDelivered = 2
	for _, d := range []*consumer.Delivery{first, &redelivered, delivery("da637472900382838869_1364969609"), delivery("not an alert id")} {
		out := svc.Handle(ctx, d)
		r := out.Result
		fmt.Println(d.StreamSeq, out.Action, r.Status, r.Domains, r.Kind(), "attempts:", r.Attempts, "cached:", r.Cached != nil && *r.Cached, "duplicate:", out.Duplicate)
	}
	info, _ := js.Stream(ctx, "RESULTS")
	fmt.Println("results stored:", info.CachedInfo().State.Msgs)
	// Output:
	// 1 ack success [www.example.com cdn.example.net]  attempts: 1 cached: false duplicate: false
	// 1 ack success [www.example.com cdn.example.net]  attempts: 1 cached: false duplicate: true
	// 2 ack success [www.example.com cdn.example.net]  attempts: 0 cached: true duplicate: false
	// 3 terminate failure [] invalid_request attempts: 0 cached: false duplicate: false
	// results stored: 3
}
