package testenv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of nats-server child processes; a
// restarted node keeps its ports and store, and catches up from the others.
type NATSCluster struct {
	Nodes []*NATSProcess
}

// StartNATSCluster starts n nats-servers (n1, n2, ...) as one JetStream
// cluster, as [StartNATS] does, with extraArgs on each command line, and
// waits until the cluster has formed.
func StartNATSCluster(tb testing.TB, n int, extraArgs ...string) *NATSCluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("testenv: a cluster of %d nodes", n)
	}
	bin, ports := NATSServerBinary(tb), freePorts(tb, 2*n) // client and route port of each node
	routes := make([]string, n)
	for i := range n {
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(ports[2*i+1])
	}
	c := &NATSCluster{}
	for i := range n {
		args := append([]string{"--cluster_name", "testenv", "--cluster", routes[i], "--routes", strings.Join(routes, ",")}, extraArgs...)
		c.Nodes = append(c.Nodes, launchNATS(tb, bin, "n"+strconv.Itoa(i+1), ports[2*i], args...))
	}
	// JetStream answers only once there is a quorum: start all, then wait.
	for _, node := range c.Nodes {
		node.waitReady(tb)
	}
	// Until the meta leader has heard from every peer, a stream on every
	// node fails with "no suitable peers".
	Eventually(tb, natsStartTimeout, natsPollInterval, func() bool {
		return c.placeable() == nil
	}, "the JetStream cluster to form (a stream placeable on every node)")
	return c
}

// placeable creates and deletes a stream with a replica on every node.
func (c *NATSCluster) placeable() error {
	return probeJS(c.Nodes[0].URL(), 5*time.Second, func(ctx context.Context, js jetstream.JetStream) error {
		const probe = "TESTENV_PLACEMENT_PROBE"
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: probe, Subjects: []string{"_testenv.placement.probe"},
			Replicas: len(c.Nodes), Storage: jetstream.MemoryStorage}); err != nil {
			return fmt.Errorf("a stream on %d replicas: %w", len(c.Nodes), err)
		}
		return js.DeleteStream(ctx, probe)
	})
}

// Name returns a cluster node's server name ("n1", ...); empty when alone.
func (n *NATSProcess) Name() string { return n.name }

// URLs returns every node's client URL, comma separated as in NATS_URL.
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// JetStream returns a JetStream context on a reconnecting connection to
// every node.
func (c *NATSCluster) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	_, js := Connect(tb, c.URLs(), reconnecting...)
	return js
}

// StreamLeader waits up to timeout for the stream's leader and returns it.
func (c *NATSCluster) StreamLeader(tb testing.TB, js jetstream.JetStream, stream string, timeout time.Duration) *NATSProcess {
	tb.Helper()
	var leader *NATSProcess
	Eventually(tb, timeout, 50*time.Millisecond, func() bool {
		info, err := streamInfo(js, stream)
		if err != nil || info.Cluster == nil {
			return false
		}
		i := slices.IndexFunc(c.Nodes, func(n *NATSProcess) bool { return n.name == info.Cluster.Leader })
		if i >= 0 {
			leader = c.Nodes[i]
		}
		return leader != nil
	}, "stream %s has a leader", stream)
	return leader
}

// WaitStreamCurrent waits up to timeout until [StreamCurrent] holds on
// every node, and returns the last stream information read.
func (c *NATSCluster) WaitStreamCurrent(tb testing.TB, js jetstream.JetStream, stream string, timeout time.Duration) *jetstream.StreamInfo {
	tb.Helper()
	var last *jetstream.StreamInfo
	var why error
	Eventually(tb, timeout, 100*time.Millisecond, func() bool {
		if last, why = streamInfo(js, stream); why == nil {
			why = StreamCurrent(last, len(c.Nodes))
		}
		return why == nil
	}, "stream %s has every replica current (last: %v)", stream, lazyErr{&why})
	return last
}

// lazyErr prints the error it points to when it is formatted.
type lazyErr struct{ err *error }

func (l lazyErr) String() string { return fmt.Sprint(*l.err) }

// StreamCurrent reports why info lacks a leader and replicas-1 peers online
// and current; nil when it has them.
func StreamCurrent(info *jetstream.StreamInfo, replicas int) error {
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return errors.New("no leader")
	}
	if len(info.Cluster.Replicas) != replicas-1 {
		return fmt.Errorf("%d peers besides the leader, want %d", len(info.Cluster.Replicas), replicas-1)
	}
	for _, p := range info.Cluster.Replicas {
		if p.Offline || !p.Current {
			return fmt.Errorf("peer %s offline=%v current=%v lag=%d", p.Name, p.Offline, p.Current, p.Lag)
		}
	}
	return nil
}

func streamInfo(js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}
