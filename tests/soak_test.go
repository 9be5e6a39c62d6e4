package tests

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// soakFixedSeed is the short run's seed that never changes.
const soakFixedSeed = 1

// Settings of the service under the soak.
const (
	soakShutdownTimeout = 5 * time.Second
	soakRateLimits      = "30/2s"
)

// soakConfig is one run.
type soakConfig struct {
	seed     int64
	n        int           // requests
	span     time.Duration // of the load and the faults
	heal     time.Duration // the longest wait for every result once the faults end
	meanGap  time.Duration // between two faults
	logLevel string
	// api is the DEFENDER_API the service runs with; "" is its default.
	api string
}

// soakRequestRate is the pace of the load when SOAK_N does not set it.
const soakRequestRate = 8 // per second

// TestFaultSoak: a three-node NATS cluster, three serve replicas, the
// Defender and Entra emulator, a steady seeded load and seeded faults at
// random times, several at once; then an independent check of every stored
// request's results (soak_check_test.go).
//
// Faults are kept inside the retry budget, so that each request has exactly
// one right result and "wrong" needs no list of excuses: a Defender fault
// lasts at most 4 s, one at a time with 2 s between two, while a request
// retries at least every RETRY_MAX_INTERVAL (1 s) for RETRY_MAX_ELAPSED
// (2 min); MAX_DELIVER (20) is far above the deliveries that kills,
// stops and cuts can cost one request. A request may therefore never end
// unavailable or throttled: such a result is wrong.
//
// SOAK_SEED replays a run (the seed is printed), SOAK_N sets the number of
// requests, SOAK_DURATION (such as 30m) selects one long run in place of
// the two short ones.
//
// The two short runs are two tests, this one with the fixed seed and
// TestFaultSoakRandomSeed, not subtests: a parallel test's subtests wait
// behind every other test of the package, and the soak is the longest.
func TestFaultSoak(t *testing.T) {
	t.Parallel()
	cfg := soakSettings(t)
	switch v := os.Getenv("SOAK_SEED"); {
	case v != "":
		seed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: want an integer", v)
		}
		cfg.seed = seed
	case os.Getenv("SOAK_DURATION") != "":
		t.Skip("SOAK_DURATION: one long run with a random seed, TestFaultSoakRandomSeed")
	default:
		cfg.seed = soakFixedSeed
	}
	runFaultSoak(t, cfg)
}

// TestFaultSoakRandomSeed is TestFaultSoak with a seed of the moment.
func TestFaultSoakRandomSeed(t *testing.T) {
	t.Parallel()
	cfg := soakSettings(t)
	if os.Getenv("SOAK_SEED") != "" {
		t.Skip("SOAK_SEED: one run with that seed, TestFaultSoak")
	}
	cfg.seed = time.Now().UnixNano()
	runFaultSoak(t, cfg)
}

// soakSettings is the run that SOAK_DURATION and SOAK_N ask for, without
// its seed.
func soakSettings(t *testing.T) soakConfig {
	if testing.Short() {
		t.Skip("the fault soak takes a minute")
	}
	cfg := soakConfig{span: 25 * time.Second, heal: 45 * time.Second, meanGap: 2 * time.Second, logLevel: "info"}
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			t.Fatalf("SOAK_DURATION=%q: want a duration of at least 10s", v)
		}
		cfg.span, cfg.heal, cfg.meanGap, cfg.logLevel = d, 3*time.Minute, 3*time.Second, "warn"
	}
	cfg.n = int(cfg.span.Seconds() * soakRequestRate)
	if v := os.Getenv("SOAK_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SOAK_N=%q: want a positive number", v)
		}
		cfg.n = n
	}
	return cfg
}

func runFaultSoak(t *testing.T, cfg soakConfig) {
	rng := rand.New(rand.NewSource(cfg.seed))
	var tenants []string
	if rng.Intn(3) == 0 {
		tenants = soakTenantNames
	}
	load := newSoakLoad(rng, cfg.n, tenants)
	plan := planSoakFaults(rng, cfg.span, cfg.meanGap, 3, 3)
	t.Logf("fault soak: seed %d (SOAK_SEED=%d replays it), %d requests over %v, %d faults planned, tenants file: %v",
		cfg.seed, cfg.seed, cfg.n, cfg.span, len(plan), tenants != nil)

	limits, err := connector.ParseLimits(soakRateLimits)
	if err != nil {
		t.Fatal(err)
	}
	defenders, envFor := soakDefenders(t, load, tenants, limits)

	began := time.Now()
	var phases []string
	phase := func(name string) {
		phases = append(phases, fmt.Sprintf("%s %v", name, time.Since(began).Round(100*time.Millisecond)))
		began = time.Now()
	}
	cluster := testenv.StartNATSCluster(t, 3, "--no_advertise")
	phase("cluster")
	js := cluster.JetStream(t)
	rig := newSoakRig(t, cfg, cluster, js, defenders, envFor)
	// All three at once on a fresh cluster, as a Deployment's first
	// rollout starts them; the load begins once the request stream is
	// there, while they start.
	rig.start = time.Now()
	for _, r := range rig.replicas {
		r.start(t)
	}
	rig.waitStream(requestStream, time.Minute)
	phase("start")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type published struct {
		stored int
		err    error
	}
	pub := make(chan published, 1)
	script := func(tenant, alert string, answers ...emulator.Answer) {
		defenders[soakTenantIndex(tenants, tenant)].Script(alert, answers...)
	}
	rig.start = time.Now()
	go func() {
		n, err := publishSoakLoad(ctx, js, load.Requests, cfg.span-2*time.Second, script)
		pub <- published{n, err}
	}()
	rig.runFaults(ctx, plan)
	rig.heal()
	p := <-pub
	if p.err != nil {
		t.Errorf("the load: %v", p.err)
	}
	phase("load and faults")
	rig.waitReady(time.Minute)
	healed := rig.waitHealed(p.stored, cfg.heal)
	phase("heal")

	rep, err := checkSoak(t.Context(), js, load, soakRegistrations(load, tenants, defenders, limits))
	if err != nil {
		t.Fatal(err)
	}
	phase("check")
	rig.report(cfg, rep, healed, phases)
}

// newSoakRig sets up three replicas (not started) of the service under the
// soak, each reaching every node through a relay of its own.
func newSoakRig(t *testing.T, cfg soakConfig, cluster *testenv.NATSCluster, js jetstream.JetStream,
	defenders []*recordingEmulator, envFor func(natsURL string, extra ...string) []string) *soakRig {
	t.Helper()
	settings := []string{
		"STREAM_REPLICAS=3", "CONCURRENCY=4", "ACK_WAIT=3s", "MAX_DELIVER=20",
		"RETRY_INITIAL_INTERVAL=100ms", "RETRY_MAX_INTERVAL=1s", "RETRY_MAX_ELAPSED=2m",
		"DEFENDER_RATE_LIMITS=" + soakRateLimits, "DEFENDER_TIMEOUT=5s", "CACHE_TTL=1h",
		"SHUTDOWN_TIMEOUT=" + soakShutdownTimeout.String(), "LOG_LEVEL=" + cfg.logLevel,
	}
	if cfg.api != "" {
		settings = append(settings, "DEFENDER_API="+cfg.api)
	}
	rig := &soakRig{t: t, cluster: cluster, js: js, defenders: defenders, nodeDown: make([]bool, len(cluster.Nodes))}
	for i := range 3 {
		r := &soakReplica{name: fmt.Sprintf("replica %d", i+1)}
		urls := make([]string, len(cluster.Nodes))
		for k, node := range cluster.Nodes {
			rl := startRelay(t, strings.TrimPrefix(node.URL(), "nats://"))
			r.relays, urls[k] = append(r.relays, rl), rl.URL()
		}
		port := strconv.Itoa(testenv.FreePort(t))
		r.env = envFor(strings.Join(urls, ","), append(settings, "HTTP_LISTEN=127.0.0.1:"+port)...)
		r.ready = "http://127.0.0.1:" + port + "/readyz"
		rig.replicas = append(rig.replicas, r)
	}
	return rig
}

// report prints the faults and the checker's findings, and fails the test
// with the seed when any result is lost, duplicated, wrong or over the
// quota, or a replica misbehaved.
func (g *soakRig) report(cfg soakConfig, rep *soakReport, healed bool, phases []string) {
	t := g.t
	t.Helper()
	var faults []string
	total := 0
	for k := range soakFaultKinds {
		total += g.done[k]
		s := fmt.Sprintf("%s %d", k, g.done[k])
		if g.skipped[k] > 0 {
			s += fmt.Sprintf(" (%d skipped)", g.skipped[k])
		}
		faults = append(faults, s)
	}
	t.Logf("seed %d: %d faults: %s; every result in %v; took %s", cfg.seed, total, strings.Join(faults, ", "),
		healed, strings.Join(phases, ", "))
	failed := rep.failed() || len(g.defects) > 0
	shown := 20
	if failed {
		shown = 0
	}
	rep.log(t, shown)
	if !failed {
		return
	}
	t.Logf("fault timeline:\n%s", strings.Join(g.timeline, "\n"))
	msg := fmt.Sprintf("seed %d (SOAK_SEED=%d): %d lost, %d duplicated, %d wrong, %d over the quota, %d calls for invalid IDs, %d defects",
		cfg.seed, cfg.seed, len(rep.Lost), len(rep.Duplicated), len(rep.Wrong), len(rep.OverQuota), len(rep.BadCalls), len(g.defects))
	if len(g.defects) > 0 {
		msg += ":\n" + strings.Join(g.defects, "\n")
	}
	t.Error(msg)
}

// soakDefenders starts one recording Defender per app registration (one,
// or one per tenant) knowing the load's alerts, and returns them with the
// environment of a replica that talks to them.
func soakDefenders(t *testing.T, load *soakLoad, tenants []string, limits []connector.Limit) ([]*recordingEmulator, func(natsURL string, extra ...string) []string) {
	t.Helper()
	var defenders []*recordingEmulator
	var tes []tenantEmulator
	var certs []string
	for i, k := range soakTenantKeys(tenants) {
		// Defender's own pace, so that faults find requests in flight.
		cfg := emulator.Config{Latency: 200 * time.Millisecond, Quota: limits, Alerts: load.Alerts[k]}
		secret := fmt.Sprintf("soak-secret-%d", i)
		if tenants != nil {
			cfg.TenantID = fmt.Sprintf("6f1c2b9e-0000-4000-8000-0000000001%02d", i)
			cfg.ClientID, cfg.ClientSecret = fmt.Sprintf("0a3e5f7d-0000-4000-8000-0000000001%02d", i), secret
		}
		d := newRecordingEmulator(t, cfg)
		defenders = append(defenders, d)
		tes = append(tes, tenantEmulator{name: k, emu: &emulator.Server{Emulator: d.Emulator, URL: d.URL}, secret: secret})
		certs = append(certs, d.CertFile)
	}
	env := func(natsURL string, extra ...string) []string {
		if tenants == nil {
			return defenders[0].env(natsURL, extra...)
		}
		return tenantsEnv(t, natsURL, certs, tes, extra...)
	}
	return defenders, env
}

// soakRegistrations are the Defenders' records, for the checker: their
// calls, quota, and the alert IDs valid requests routed to each.
func soakRegistrations(load *soakLoad, tenants []string, defenders []*recordingEmulator, limits []connector.Limit) []soakRegistration {
	out := make([]soakRegistration, len(defenders))
	for i, k := range soakTenantKeys(tenants) {
		name := k
		if name == "" {
			name = "default"
		}
		out[i] = soakRegistration{Name: name, Calls: defenders[i].Recorded(), Limits: limits, Valid: map[string]bool{}}
	}
	for _, r := range load.Requests {
		if r.Alert != "" && r.Class != "unknown_tenant" && r.Class != "tenant_conflict" {
			out[soakTenantIndex(tenants, r.Tenant)].Valid[r.Alert] = true
		}
	}
	return out
}

// soakTenantKeys are the tenants of the run, or "" for the one of the
// environment.
func soakTenantKeys(tenants []string) []string {
	if tenants == nil {
		return []string{""}
	}
	return tenants
}

// soakTenantIndex is the index of a tenant's Defender.
func soakTenantIndex(tenants []string, tenant string) int {
	for i, name := range tenants {
		if name == tenant {
			return i
		}
	}
	return 0
}

// waitReady waits until every replica answers /readyz, starting again any
// that exits on its own (a defect).
func (g *soakRig) waitReady(timeout time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		g.supervise()
		if !slices.ContainsFunc(g.replicas, func(r *soakReplica) bool { return !r.isReady() }) {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("not every replica ready within %v; defects:\n%s", timeout, strings.Join(g.defects, "\n"))
		}
		<-tick.C
	}
}

// waitStream waits until the stream exists, starting again any replica
// that exits on its own (a defect).
func (g *soakRig) waitStream(name string, timeout time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		g.supervise()
		ctx, cancel := context.WithTimeout(g.t.Context(), time.Second)
		_, err := g.js.Stream(ctx, name)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no stream %s within %v (%v); defects:\n%s", name, timeout, err, strings.Join(g.defects, "\n"))
		}
		<-tick.C
	}
}

// waitHealed waits up to timeout until the result stream holds at least
// stored results and the request consumer has nothing pending; it reports
// whether it did (when not, the check finds what is missing).
func (g *soakRig) waitHealed(stored int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		g.supervise()
		if resultCount(g.t, g.js) >= stored {
			ctx, cancel := context.WithTimeout(g.t.Context(), 2*time.Second)
			c, err := g.js.Consumer(ctx, requestStream, consumerName)
			cancel()
			if err == nil && c.CachedInfo().NumPending == 0 && c.CachedInfo().NumAckPending == 0 {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}
