package bench

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// layout is where the leaders of the streams and durable consumers sit
// for a share of BenchmarkCluster's rounds. Every client (the baseline
// loop, alert-domains serve, the load generator) connects to the first
// node: where the leaders are decides how many hops each publish, pull and
// ack takes, and a placement left to chance made one system's run faster
// or slower than the other's by as much as the difference measured.
type layout struct {
	name string
	node int // index of the node that leads every stream and consumer
}

var clusterLayouts = []layout{
	{name: "leaders on the clients' node", node: 0},
	{name: "leaders on another node", node: 1},
}

// placeLeaders moves the leader of every stream on the cluster, and of
// every durable consumer of those streams, to node, with the server's
// leader step-down and a preferred placement.
func placeLeaders(tb testing.TB, js jetstream.JetStream, node *testenv.NATSProcess) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 2*time.Minute)
	defer cancel()
	var names []string
	for name := range js.StreamNames(ctx).Name() {
		names = append(names, name)
	}
	for _, name := range names {
		s, err := js.Stream(ctx, name)
		if err != nil {
			tb.Fatalf("stream %s: %v", name, err)
		}
		moveLeader(ctx, tb, js, "$JS.API.STREAM.LEADER.STEPDOWN."+name, node.Name(), "stream "+name, func() (*jetstream.ClusterInfo, error) {
			info, err := s.Info(ctx)
			if err != nil {
				return nil, err
			}
			return info.Cluster, nil
		})
		var durables []string
		for info := range s.ListConsumers(ctx).Info() {
			if info.Config.Durable != "" {
				durables = append(durables, info.Name)
			}
		}
		for _, cons := range durables {
			moveLeader(ctx, tb, js, "$JS.API.CONSUMER.LEADER.STEPDOWN."+name+"."+cons, node.Name(), "consumer "+name+"/"+cons, func() (*jetstream.ClusterInfo, error) {
				cc, err := js.Consumer(ctx, name, cons)
				if err != nil {
					return nil, err
				}
				info, err := cc.Info(ctx)
				if err != nil {
					return nil, err
				}
				return info.Cluster, nil
			})
		}
	}
}

// moveLeader asks for a step-down to want on subject until the group that
// cluster reports is led by want.
func moveLeader(ctx context.Context, tb testing.TB, js jetstream.JetStream, subject, want, what string, cluster func() (*jetstream.ClusterInfo, error)) {
	tb.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": want}})
	testenv.Eventually(tb, time.Minute, 100*time.Millisecond, func() bool {
		ci, err := cluster()
		if err != nil || ci == nil || ci.Leader == "" {
			return false // no leader yet: an election is under way
		}
		if ci.Leader == want {
			return true
		}
		// The answer may be an error (a step-down already under way): the
		// leader read next decides.
		_, _ = js.Conn().RequestWithContext(ctx, subject, req)
		return false
	}, "%s led by %s", what, want)
}
