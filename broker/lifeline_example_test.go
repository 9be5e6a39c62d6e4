package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/broker"
)

// A Lifeline ends a long-running process's work when its NATS connection is
// closed for good (here closed by hand; in production, by credentials the
// server refuses twice), so that the process exits non-zero naming the
// reason and its supervisor restarts it.
func ExampleWatch() {
	dir, err := os.MkdirTemp("", "lifeline-example")
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

	life := broker.Watch(context.Background(), nc, slog.New(slog.DiscardHandler))
	fmt.Println("before:", life.Err())
	nc.Close()
	<-life.Context().Done()
	fmt.Println("after:", errors.Is(life.Err(), broker.ErrConnectionClosed))
	// Output:
	// before: <nil>
	// after: true
}
