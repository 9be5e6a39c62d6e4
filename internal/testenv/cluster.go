package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of nats-server child processes with
// routes on loopback. Each node keeps its ports and store directory across
// [NATSProcess.Kill] and [NATSProcess.Restart], so a restarted node rejoins
// with what it had stored and catches up from the others.
type NATSCluster struct {
	Nodes []*NATSProcess
}

// StartNATSCluster starts n nats-servers built by [NATSServerBinary] as one
// JetStream cluster (server names n1, n2, ...), on free loopback ports with
// stores in temporary directories, and waits until every node answers
// JetStream requests. The nodes are stopped at cleanup, and their output is
// logged when the test has failed.
func StartNATSCluster(tb testing.TB, n int, opts ...NATSOption) *NATSCluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("testenv: a cluster of %d nodes", n)
	}
	cfg := natsConfig{startTimeout: defaultNATSStartTimeout}
	for _, opt := range opts {
		opt(&cfg)
	}
	c := newCluster(tb, n, NATSServerBinary(tb), cfg)
	tb.Cleanup(func() {
		for _, node := range c.Nodes {
			if node.running() {
				if err := node.stop(syscall.SIGTERM); err != nil {
					tb.Errorf("testenv: nats-server %s: %v", node.name, err)
				}
			}
			if tb.Failed() {
				tb.Logf("nats-server %s output:\n%s", node.name, node.out.String())
			}
		}
	})
	// A node's JetStream answers only once the cluster has a quorum: start
	// every process before waiting for any.
	for _, node := range c.Nodes {
		proc, err := startProcess(node.bin, baseEnv(), node.args, node.out)
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		node.proc = proc
	}
	for _, node := range c.Nodes {
		if err := node.waitReady(); err != nil {
			tb.Fatalf("testenv: nats-server %s: %v", node.name, err)
		}
	}
	// Before the meta group's leader sees every other node online and
	// current, a stream with as many replicas as nodes fails with "no
	// suitable peers for placement".
	Eventually(tb, cfg.startTimeout, natsPollInterval, func() bool {
		return c.formed() == nil
	}, "the JetStream cluster to form (every node online and current)")
	return c
}

// newCluster lays out n nodes of bin, each on free ports of its own, with
// routes to every node.
func newCluster(tb testing.TB, n int, bin string, cfg natsConfig) *NATSCluster {
	used := map[int]bool{}
	port := func() int {
		for {
			if p := FreePort(tb); !used[p] {
				used[p] = true
				return p
			}
		}
	}
	c := &NATSCluster{}
	clusterPorts := make([]int, n)
	for i := range n {
		c.Nodes = append(c.Nodes, &NATSProcess{
			bin:          bin,
			name:         "n" + strconv.Itoa(i+1),
			port:         port(),
			httpPort:     port(),
			storeDir:     tb.TempDir(),
			startTimeout: cfg.startTimeout,
			out:          newOutput(),
		})
		clusterPorts[i] = port()
	}
	routes := make([]string, n)
	for i, p := range clusterPorts {
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(p)
	}
	for i, node := range c.Nodes {
		node.args = append([]string{
			"-js",
			"-n", node.name,
			"-a", "127.0.0.1",
			"-p", strconv.Itoa(node.port),
			"--http_port", strconv.Itoa(node.httpPort),
			"-sd", node.storeDir,
			"--cluster_name", "testenv",
			"--cluster", routes[i],
			"--routes", strings.Join(routes, ","),
		}, cfg.args...)
	}
	return c
}

func (c *NATSCluster) formed() error {
	for _, node := range c.Nodes {
		var jsz struct {
			Meta *struct {
				Leader   string `json:"leader"`
				Replicas []struct {
					Name    string `json:"name"`
					Current bool   `json:"current"`
					Offline bool   `json:"offline"`
				} `json:"replicas"`
			} `json:"meta_cluster"`
		}
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(node.httpPort) + "/jsz")
		if err != nil {
			return err
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if jsz.Meta == nil || jsz.Meta.Leader != node.name {
			continue
		}
		online := 0
		for _, r := range jsz.Meta.Replicas {
			if r.Current && !r.Offline {
				online++
			}
		}
		if online != len(c.Nodes)-1 {
			return fmt.Errorf("meta leader %s sees %d of %d peers online and current", node.name, online, len(c.Nodes)-1)
		}
		return c.placeable()
	}
	return errors.New("no meta leader yet")
}

// placeable creates and deletes a stream with a replica on every node: the
// meta leader places one only once it has heard from every peer.
func (c *NATSCluster) placeable() error {
	nc, err := nats.Connect(c.Nodes[0].URL(), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const probe = "TESTENV_PLACEMENT_PROBE"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: probe, Subjects: []string{"_testenv.placement.probe"},
		Replicas: len(c.Nodes), Storage: jetstream.MemoryStorage}); err != nil {
		return fmt.Errorf("a stream on %d replicas: %w", len(c.Nodes), err)
	}
	return js.DeleteStream(ctx, probe)
}

// Name returns the server name of a cluster node ("n1", ...); empty for a
// server started alone.
func (n *NATSProcess) Name() string { return n.name }

// URLs returns the client URLs of every node, comma separated, as NATS_URL
// takes them.
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Node returns the node with the given server name, or nil.
func (c *NATSCluster) Node(name string) *NATSProcess {
	for _, n := range c.Nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// JetStream returns a JetStream context on a new connection to every node
// that reconnects without limit, closed at cleanup.
func (c *NATSCluster) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(c.URLs(),
		nats.Name("testenv"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
	)
	if err != nil {
		tb.Fatalf("testenv: connect to %s: %v", c.URLs(), err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("testenv: jetstream: %v", err)
	}
	return js
}

// StreamLeader waits up to timeout until the stream has a leader and
// returns its node.
func (c *NATSCluster) StreamLeader(tb testing.TB, js jetstream.JetStream, stream string, timeout time.Duration) *NATSProcess {
	tb.Helper()
	var leader *NATSProcess
	Eventually(tb, timeout, 50*time.Millisecond, func() bool {
		info, err := streamInfo(js, stream)
		if err != nil || info.Cluster == nil {
			return false
		}
		leader = c.Node(info.Cluster.Leader)
		return leader != nil
	}, "stream %s has a leader", stream)
	return leader
}

// WaitStreamCurrent waits up to timeout until the stream has a leader and
// every other node in its peer set is online and current, and returns the
// last stream information read.
func (c *NATSCluster) WaitStreamCurrent(tb testing.TB, js jetstream.JetStream, stream string, timeout time.Duration) *jetstream.StreamInfo {
	tb.Helper()
	var last *jetstream.StreamInfo
	var why error
	Eventually(tb, timeout, 100*time.Millisecond, func() bool {
		info, err := streamInfo(js, stream)
		if err != nil {
			why = err
			return false
		}
		last, why = info, StreamCurrent(info, len(c.Nodes))
		return why == nil
	}, "stream %s has every replica current (last: %v)", stream, lazyErr{&why})
	return last
}

// lazyErr prints the error it points to when it is formatted.
type lazyErr struct{ err *error }

func (l lazyErr) String() string { return fmt.Sprint(*l.err) }

// StreamCurrent reports why the stream, as info describes it, does not
// have a leader and replicas-1 other peers online and current; nil when it
// does.
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
