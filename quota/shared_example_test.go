package quota_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/quota"
)

// Two replicas share one app registration's quota of 2 calls a minute,
// kept by the NATS server: each starts one call, and a third call, on
// either replica, waits for a slot (here until its context gives up).
func ExampleShared() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	dir, err := os.MkdirTemp("", "quota-example")
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

	limits, _ := connector.ParseLimits("2/1m")
	layout := quota.NewLayout("alert-domains", quota.Primary(limits))
	reg := quota.Registration{API: connector.Graph, Cloud: "public",
		TenantID: "6f1c2b9e-0000-4000-8000-000000000001", ClientID: "0a3e5f7d-0000-4000-8000-000000000002"}
	runs := make(chan error, 2)
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	replica := func() (*quota.Shared, error) {
		nc, err := nats.Connect(emb.URL())
		if err != nil {
			return nil, err
		}
		conns = append(conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		if err := quota.Provision(ctx, js, layout, limits, 1, 10*time.Second); err != nil {
			return nil, err
		}
		q, err := quota.NewShared(layout, reg, limits, quota.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return nil, err
		}
		go func() { runs <- q.Run(ctx, js) }()
		return q, nil
	}
	a, err := replica()
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := replica()
	if err != nil {
		fmt.Println(err)
		return
	}

	for i, c := range []struct {
		q    *quota.Shared
		wait time.Duration
	}{{a, 10 * time.Second}, {b, 10 * time.Second}, {a, 300 * time.Millisecond}} {
		callCtx, cancel := context.WithTimeout(ctx, c.wait)
		release, _, err := c.q.Acquire(callCtx)
		cancel()
		if err != nil {
			fmt.Printf("call %d: %v\n", i+1, err)
			continue
		}
		fmt.Printf("call %d: may start\n", i+1)
		release() // the call has ended; its slot is held one more window
	}
	fmt.Println("calls in the last minute, as the server counts them:", b.Used(time.Minute))
	stop()
	for range 2 {
		if err := <-runs; err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// call 1: may start
	// call 2: may start
	// call 3: context deadline exceeded
	// calls in the last minute, as the server counts them: 2
}
