package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
)

// What `alert-domains serve` does with NATS before it takes a request:
// connect, derive the topology from the configuration, and check it
// (PROVISION=false) or create what is missing (PROVISION=true).
func Example() {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	dir, err := os.MkdirTemp("", "broker-example")
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
	nc, err := broker.Connect(ctx, cfg, "", "broker example", logger)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	topo := broker.NewTopology(cfg)
	fmt.Println("verify:", errors.Is(topo.Verify(ctx, js), broker.ErrMissing))
	if err := topo.Provision(ctx, js, logger); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("verify after provision:", topo.Verify(ctx, js))
	fmt.Println(topo.RequestStream.Name, topo.ResultStream.Name)
	fmt.Println(topo.Consumer.Durable, topo.Advisories.Durable)
	// Output:
	// verify: true
	// verify after provision: <nil>
	// DEFENDER_ALERT_DOMAIN_REQUESTS DEFENDER_ALERT_DOMAIN_RESULTS
	// alert-domains alert-domains-max-deliveries
}
