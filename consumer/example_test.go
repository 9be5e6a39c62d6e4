package consumer_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/consumer"
)

// A Consumer pulls from a durable consumer and settles each message as its
// handler decided: here the first message is acknowledged, the second
// terminated. Run returns once its context ends and in-flight work is done.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "consumer-example")
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
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "REQUESTS", Subjects: []string{"requests"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		fmt.Println(err)
		return
	}
	for _, body := range []string{"da637472900382838869_1364969609", "not an alert"} {
		if _, err := js.Publish(ctx, "requests", []byte(body)); err != nil {
			fmt.Println(err)
			return
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	handled := 0
	handler := func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		fmt.Printf("%d %s (delivery %d)\n", d.StreamSeq, d.Data, d.NumDelivered)
		action := consumer.Ack
		if d.StreamSeq == 2 {
			action = consumer.Terminate
		}
		if handled++; handled == 2 {
			stop()
		}
		return consumer.Outcome{Action: action}
	}
	bind := func(ctx context.Context) (jetstream.Consumer, error) {
		return js.Consumer(ctx, "REQUESTS", "workers")
	}
	cons, err := consumer.New(bind, handler, consumer.Config{Concurrency: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := cons.Run(runCtx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stopped; in flight:", cons.InFlight())
	// Output:
	// 1 da637472900382838869_1364969609 (delivery 1)
	// 2 not an alert (delivery 1)
	// stopped; in flight: 0
}
