package tests

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// clusterReplica is a serve process of the cluster test with its /readyz.
type clusterReplica struct {
	env   []string
	proc  *testenv.Process
	ready string
}

func startReplica(t *testing.T, emu *emulator.Server, cert, urls string) *clusterReplica {
	t.Helper()
	port := strconv.Itoa(testenv.FreePort(t))
	r := &clusterReplica{
		env: serviceEnv(emu, cert, urls,
			"STREAM_REPLICAS=3", "CONCURRENCY=4", "ACK_WAIT=3s", "CACHE_TTL=1h", "LOG_LEVEL=info",
			"HTTP_LISTEN=127.0.0.1:"+port),
		ready: "http://127.0.0.1:" + port + "/readyz",
	}
	r.proc = testenv.StartServe(t, r.env)
	return r
}

func (r *clusterReplica) isReady() bool {
	resp, err := http.Get(r.ready)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestClusterSurvivesNodeAndReplicaLoss: a three-node JetStream cluster,
// STREAM_REPLICAS=3, two serve replicas each given all three URLs, 1,000
// requests. The node that leads the request stream is killed with SIGKILL
// mid-run, later one replica is killed and started again, then the node is
// started again. Every stored request ends with exactly one result, both
// replicas are ready at the end, and the killed node has caught up.
func TestClusterSurvivesNodeAndReplicaLoss(t *testing.T) {
	t.Parallel()
	const n = 1000
	ids, hosts := knownAlerts("cluster", n)
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: hosts, Latency: 40 * time.Millisecond})
	cluster := testenv.StartNATSCluster(t, 3)
	js := cluster.JetStream(t)

	// A request stream made with one replica before: provisioning scales it.
	cfg, err := config.Load(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	r1 := broker.NewTopology(cfg).RequestStream
	if err := broker.Retrying(t.Context(), slog.New(slog.DiscardHandler), func() error {
		_, err := js.CreateStream(t.Context(), r1)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	a := startReplica(t, emu, cert, cluster.URLs())
	b := startReplica(t, emu, cert, cluster.URLs())
	for _, name := range []string{requestStream, resultStream} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, got)
		}
	}
	cluster.WaitStreamCurrent(t, js, requestStream, 30*time.Second)

	seqs := publishAll(t, js, ids)
	waitResultCount(t, js, n/4, time.Minute)
	leader := cluster.StreamLeader(t, js, requestStream, 10*time.Second)
	leader.Kill(t)
	t.Logf("killed %s, the request stream's leader, at %d results", leader.Name(), resultCount(t, js))

	waitResultCount(t, js, n/2, time.Minute)
	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool { return a.isReady() && b.isReady() },
		"both replicas ready while %s is down", leader.Name())
	if err := a.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.proc.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if c := resultCount(t, js); c >= n {
		t.Fatalf("all %d results stored before the replica was killed; the test proves nothing", c)
	}
	t.Logf("killed replica a at %d results", resultCount(t, js))
	a.proc = testenv.StartServe(t, a.env)

	leader.Restart(t)
	t.Logf("restarted %s", leader.Name())

	waitResultCount(t, js, n, 2*time.Minute)
	requestsAllAcked(t, js, time.Minute)
	all := results(t, js)
	want := make(map[uint64]string, n)
	for i, seq := range seqs {
		want[seq] = ids[i]
	}
	bySeq := map[uint64]int{}
	dups, missing, wrong := 0, 0, 0
	for _, r := range all {
		if bySeq[r.RequestSequence]++; bySeq[r.RequestSequence] > 1 {
			dups++
		}
		id, ok := want[r.RequestSequence]
		if !ok || r.Status != "success" || fmt.Sprint(r.Domains) != fmt.Sprint(hosts[id]) {
			wrong++
		}
	}
	for _, seq := range seqs {
		if bySeq[seq] == 0 {
			missing++
		}
	}
	t.Logf("%d results for %d requests: %d duplicates, %d missing, %d wrong; %d Defender calls", len(all), n, dups, missing, wrong, emu.Calls())
	if len(all) != n || dups != 0 || missing != 0 || wrong != 0 {
		t.Errorf("want exactly one success result per request")
	}

	testenv.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool { return a.isReady() && b.isReady() }, "both replicas ready")
	for _, name := range []string{requestStream, resultStream} {
		info := cluster.WaitStreamCurrent(t, js, name, time.Minute)
		found := info.Cluster.Leader == leader.Name()
		for _, p := range info.Cluster.Replicas {
			found = found || p.Name == leader.Name()
		}
		if !found {
			t.Errorf("stream %s: the restarted node %s is not in its peer set", name, leader.Name())
		}
	}
}

// TestReplicasStartedTogetherOnFreshCluster: three serve processes started
// at the same moment on a fresh three-node cluster, with the shared quota
// on, as the first rollout of a three-replica Deployment starts them: every
// one provisions what it needs, waiting out the cluster's busy answers, and
// becomes ready; none exits.
func TestReplicasStartedTogetherOnFreshCluster(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	cluster := testenv.StartNATSCluster(t, 3)
	bin := testenv.BuildBinary(t)
	env := serviceEnv(emu, cert, cluster.URLs(), "STREAM_REPLICAS=3", "DEFENDER_RATE_LIMITS=20/2s,100/1m", "LOG_LEVEL=info")
	ps := make([]*testenv.Process, 3)
	for i := range ps {
		ps[i] = testenv.StartService(t, bin, env, "serve")
	}
	for i, p := range ps {
		t.Logf("replica %d: %s", i+1, p.WaitForLine(t, `"msg":"ready"`, time.Minute))
	}
}
