package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// soakFaultKind is a kind of fault the soak injects.
type soakFaultKind int

const (
	faultKill     soakFaultKind = iota // a replica killed (SIGKILL), started again after the hold
	faultTerm                          // a replica stopped (SIGTERM), started again after the hold
	faultNode                          // a NATS node stopped (SIGTERM or SIGKILL), started again after the hold
	faultOutage                        // Defender answers every call with a 5xx for the hold
	faultStorm                         // Defender answers every call 429 with Retry-After for the hold
	faultConsumer                      // every replica stopped, the request consumer deleted, the replicas started again together
	faultLeader                        // the request stream's leader steps down
	faultCut                           // a replica's NATS connections severed, and refused for the hold
	soakFaultKinds
)

var soakFaultNames = [soakFaultKinds]string{
	"kill -9 replica", "SIGTERM replica", "NATS node stopped", "Defender outage",
	"429 storm", "consumer deleted", "stream leader moved", "connection cut",
}

func (k soakFaultKind) String() string { return soakFaultNames[k] }

// soakFaultWeights make up the mix of faults.
var soakFaultWeights = [soakFaultKinds]int{3, 2, 2, 2, 2, 1, 2, 2}

// soakFault is one planned fault: at and hold are from the start of the
// load.
type soakFault struct {
	kind       soakFaultKind
	at, hold   time.Duration
	target     int            // replica or node
	status     int            // of an outage
	retryAfter time.Duration  // of a storm
	signal     syscall.Signal // that stops a node
}

func (f soakFault) String() string {
	s := fmt.Sprintf("%6.1fs %-20s", f.at.Seconds(), f.kind)
	switch f.kind {
	case faultKill, faultTerm, faultCut:
		s += fmt.Sprintf(" replica %d", f.target+1)
	case faultNode:
		s += fmt.Sprintf(" n%d (%v)", f.target+1, f.signal)
	case faultOutage:
		s += fmt.Sprintf(" %d", f.status)
	case faultStorm:
		s += fmt.Sprintf(" Retry-After %v", f.retryAfter)
	}
	if f.hold > 0 {
		s += fmt.Sprintf(" for %v", f.hold.Round(10*time.Millisecond))
	}
	return s
}

// Keeping faults apart: one per replica at a time, one NATS node down at a
// time (never the majority), one Defender fault at a time with a gap after
// it, so that a request retrying every RETRY_MAX_INTERVAL gets through
// between two.
const (
	replicaRestartMargin = 2 * time.Second
	nodeRestartMargin    = 4 * time.Second
	defenderGap          = 2 * time.Second
	consumerFaultSpan    = 12 * time.Second // stopping every replica and deleting the consumer
)

// soakPlanLead keeps faults off the first and last seconds of a run.
const soakPlanLead = 2 * time.Second

// planSoakFaults draws faults at random times in the span, on average one
// every meanGap, each kind at least once.
func planSoakFaults(rng *rand.Rand, span, meanGap time.Duration, replicas, nodes int) []soakFault {
	p := &soakPlanner{rng: rng, span: span, replicas: replicas, nodes: nodes, busy: map[string][][2]time.Duration{}}
	// One of each kind first, the one that needs every replica first of
	// all, then the random mix around them.
	kinds := []soakFaultKind{faultConsumer}
	for _, k := range rng.Perm(int(soakFaultKinds)) {
		if soakFaultKind(k) != faultConsumer {
			kinds = append(kinds, soakFaultKind(k))
		}
	}
	for _, kind := range kinds {
		for range 200 {
			if p.place(p.draw(kind, soakPlanLead+time.Duration(rng.Int63n(int64(span-2*soakPlanLead))))) {
				break
			}
		}
	}
	total := 0
	for _, w := range soakFaultWeights {
		total += w
	}
	for at := soakPlanLead; at < span-soakPlanLead; at += time.Duration(rng.ExpFloat64() * float64(meanGap)) {
		pick, kind := rng.Intn(total), soakFaultKind(0)
		for k, w := range soakFaultWeights {
			if pick -= w; pick < 0 {
				kind = soakFaultKind(k)
				break
			}
		}
		p.place(p.draw(kind, at))
	}
	slices.SortFunc(p.plan, func(a, b soakFault) int { return int(a.at - b.at) })
	return p.plan
}

// soakPlanner books what each fault needs (its replica or every replica,
// the one node allowed down, Defender) from its start to a margin after
// its end, and keeps the faults that find it free.
type soakPlanner struct {
	rng             *rand.Rand
	span            time.Duration
	replicas, nodes int
	busy            map[string][][2]time.Duration
	plan            []soakFault
}

// draw is a fault of the kind at at, with its target and hold drawn.
func (p *soakPlanner) draw(kind soakFaultKind, at time.Duration) soakFault {
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(p.rng.Int63n(int64(hi-lo))) }
	f := soakFault{kind: kind, at: at}
	switch kind {
	case faultKill, faultTerm:
		f.target, f.hold = p.rng.Intn(p.replicas), between(500*time.Millisecond, 3*time.Second)
	case faultCut:
		// Now shorter, now longer than ACK_WAIT: the replica's requests
		// are redelivered to the others while it still works on them.
		f.target, f.hold = p.rng.Intn(p.replicas), between(500*time.Millisecond, 5*time.Second)
	case faultNode:
		f.target, f.hold, f.signal = p.rng.Intn(p.nodes), between(time.Second, 5*time.Second), syscall.SIGTERM
		if p.rng.Intn(2) == 0 {
			f.signal = syscall.SIGKILL
		}
	case faultOutage:
		f.hold, f.status = between(time.Second, 4*time.Second), []int{500, 502, 503, 504}[p.rng.Intn(4)]
	case faultStorm:
		f.hold, f.retryAfter = between(time.Second, 4*time.Second), time.Duration(1+p.rng.Intn(2))*time.Second
	case faultConsumer:
		f.hold = between(500*time.Millisecond, 2*time.Second)
	}
	return f
}

// place adds f to the plan when what it needs is free for it, and it ends
// within the span.
func (p *soakPlanner) place(f soakFault) bool {
	var keys []string
	end := f.at + f.hold
	switch f.kind {
	case faultKill, faultTerm, faultCut:
		keys, end = []string{fmt.Sprint("replica", f.target)}, end+replicaRestartMargin
	case faultNode:
		keys, end = []string{"node"}, end+nodeRestartMargin
	case faultOutage, faultStorm:
		keys, end = []string{"defender"}, end+defenderGap
	case faultConsumer:
		for r := range p.replicas {
			keys = append(keys, fmt.Sprint("replica", r))
		}
		end += consumerFaultSpan
	case faultLeader:
		keys, end = []string{"leader"}, end+time.Second
	}
	if end > p.span-soakPlanLead/2 {
		return false
	}
	for _, k := range keys {
		for _, b := range p.busy[k] {
			if f.at < b[1] && b[0] < end {
				return false
			}
		}
	}
	for _, k := range keys {
		p.busy[k] = append(p.busy[k], [2]time.Duration{f.at, end})
	}
	p.plan = append(p.plan, f)
	return true
}

// soakReplica is one serve process of the soak, connected to NATS through
// its relays.
type soakReplica struct {
	name    string
	env     []string
	ready   string // its /readyz
	relays  []*natsRelay
	proc    *testenv.Process
	down    bool // stopped by a fault, which starts it again
	started bool // ready once since its last start
}

func (r *soakReplica) start(t *testing.T) {
	t.Helper()
	r.proc = testenv.StartService(t, testenv.BuildBinary(t), r.env, "serve")
	r.down, r.started = false, false
}

func (r *soakReplica) exited() bool {
	select {
	case <-r.proc.Done():
		return true
	default:
		return false
	}
}

func (r *soakReplica) isReady() bool {
	resp, err := http.Get(r.ready)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// soakRig is what the faults act on, and what they did.
type soakRig struct {
	t         *testing.T
	cluster   *testenv.NATSCluster
	js        jetstream.JetStream
	replicas  []*soakReplica
	defenders []*recordingEmulator
	nodeDown  []bool
	start     time.Time

	done     [soakFaultKinds]int
	skipped  [soakFaultKinds]int
	timeline []string
	// defects are what no fault explains: a replica that exited on its
	// own, or not with status 0 after SIGTERM.
	defects []string
}

func (g *soakRig) note(format string, args ...any) {
	g.timeline = append(g.timeline, fmt.Sprintf("%7.2fs ", time.Since(g.start).Seconds())+fmt.Sprintf(format, args...))
}

// defect records what no fault explains.
func (g *soakRig) defect(format string, args ...any) {
	g.note("DEFECT: "+format, args...)
	g.defects = append(g.defects, fmt.Sprintf("%.1fs: ", time.Since(g.start).Seconds())+fmt.Sprintf(format, args...))
}

// supervise starts again, as a supervisor would, a replica that exited
// without a fault stopping it, and records it as a defect.
func (g *soakRig) supervise() {
	for _, r := range g.replicas {
		if r.down || !r.exited() {
			continue
		}
		code, _ := r.proc.Wait(time.Second) // it has exited: this returns at once
		g.defect("%s exited on its own with status %d:\n%s", r.name, code, lastLines(r.proc.Output(), 8))
		r.start(g.t)
	}
}

// soakEvent is the beginning or the end of the fault plan[i].
type soakEvent struct {
	at  time.Duration
	end bool
	i   int
}

// runFaults carries out the plan from g.start on, in the test goroutine:
// overlapping faults are the beginnings and ends of each, in time order.
func (g *soakRig) runFaults(ctx context.Context, plan []soakFault) {
	var events []soakEvent
	for i, f := range plan {
		events = append(events, soakEvent{at: f.at, i: i})
		if f.hold > 0 {
			events = append(events, soakEvent{at: f.at + f.hold, end: true, i: i})
		}
	}
	begun := make([]bool, len(plan))
	slices.SortStableFunc(events, func(a, b soakEvent) int { return int(a.at - b.at) })
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for _, ev := range events {
		due := time.NewTimer(time.Until(g.start.Add(ev.at)))
	wait:
		for {
			select {
			case <-ctx.Done():
				due.Stop()
				return
			case <-tick.C:
				g.supervise()
			case <-due.C:
				break wait
			}
		}
		g.supervise()
		switch {
		case !ev.end:
			begun[ev.i] = g.begin(ctx, plan[ev.i])
		case begun[ev.i]:
			g.end(plan[ev.i])
		}
	}
}

// begin starts f and reports whether it did (a replica already down is
// not stopped again, nor a second node).
func (g *soakRig) begin(ctx context.Context, f soakFault) bool {
	t := g.t
	skip := func(why string) bool {
		g.skipped[f.kind]++
		g.note("skipped %s: %s", f, why)
		return false
	}
	switch f.kind {
	case faultKill, faultTerm:
		r := g.replicas[f.target]
		if r.down {
			return skip("already down")
		}
		sig := syscall.SIGKILL
		if f.kind == faultTerm {
			sig = syscall.SIGTERM
		}
		if err := r.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		r.down = true
	case faultCut:
		r := g.replicas[f.target]
		r.started = r.started || (!r.down && r.isReady())
		if !r.started {
			// One still starting would exit, as serve does when it cannot reach NATS at start.
			return skip("replica down or not ready since its start")
		}
		n := 0
		for _, rl := range r.relays {
			n += rl.Cut()
		}
		g.note("%s: %d connections severed", f, n)
		g.done[f.kind]++
		return true
	case faultNode:
		for i, down := range g.nodeDown {
			if down {
				return skip(fmt.Sprintf("n%d is down", i+1))
			}
		}
		node := g.cluster.Nodes[f.target]
		if f.signal == syscall.SIGKILL {
			node.Kill(t)
		} else {
			node.Stop(t)
		}
		g.nodeDown[f.target] = true
	case faultOutage:
		for _, d := range g.defenders {
			d.SetOutage(f.status)
		}
	case faultStorm:
		for _, d := range g.defenders {
			d.SetThrottle(f.retryAfter)
		}
	case faultConsumer:
		for _, r := range g.replicas {
			if r.down {
				return skip(r.name + " down")
			}
		}
		g.deleteConsumerWhileDown(ctx, f)
	case faultLeader:
		if err := stepDownLeader(ctx, g.js, requestStream); err != nil {
			return skip(err.Error())
		}
	}
	g.done[f.kind]++
	g.note("%s", f)
	return true
}

// deleteConsumerWhileDown stops every replica (SIGTERM) and deletes the
// request consumer once none runs.
func (g *soakRig) deleteConsumerWhileDown(ctx context.Context, f soakFault) {
	for _, r := range g.replicas {
		if err := r.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			g.t.Fatal(err)
		}
		r.down = true
	}
	for _, r := range g.replicas {
		g.reap(r, true)
	}
	if err := deleteSoakConsumer(ctx, g.js); err != nil {
		g.note("%s: %v", f, err)
	}
}

// end ends a fault that began.
func (g *soakRig) end(f soakFault) {
	t := g.t
	switch f.kind {
	case faultKill, faultTerm:
		r := g.replicas[f.target]
		g.reap(r, f.kind == faultTerm)
		r.start(t)
	case faultCut:
		for _, rl := range g.replicas[f.target].relays {
			rl.Mend()
		}
	case faultNode:
		g.cluster.Nodes[f.target].Restart(t)
		g.nodeDown[f.target] = false
	case faultOutage:
		for _, d := range g.defenders {
			d.SetOutage(0)
		}
	case faultStorm:
		for _, d := range g.defenders {
			d.SetThrottle(0)
		}
	case faultConsumer:
		for _, r := range g.replicas {
			r.start(t)
		}
	}
	g.note("end of %s", f.kind)
}

// reap waits for a stopped replica's exit; after SIGTERM the contract
// says status 0 within SHUTDOWN_TIMEOUT and 5 s, once the process runs: a
// signal before its first line of output may come before main has set up
// its handling, and ends any Go program.
func (g *soakRig) reap(r *soakReplica, term bool) {
	code, err := r.proc.Wait(soakShutdownTimeout + 10*time.Second)
	switch {
	case err != nil:
		g.defect("%s did not exit after a signal: %v", r.name, err)
		if err := r.proc.Kill(); err != nil {
			g.t.Fatal(err)
		}
		if _, err := r.proc.Wait(10 * time.Second); err != nil {
			g.t.Fatal(err)
		}
	case term && code != 0 && r.proc.Output() != "":
		g.defect("%s exited with status %d after SIGTERM:\n%s", r.name, code, lastLines(r.proc.Output(), 8))
	}
}

// heal ends every fault still on: nodes and replicas started, connections
// mended, Defender answering.
func (g *soakRig) heal() {
	for _, d := range g.defenders {
		d.SetOutage(0)
		d.SetThrottle(0)
	}
	for i, down := range g.nodeDown {
		if down {
			g.cluster.Nodes[i].Restart(g.t)
			g.nodeDown[i] = false
		}
	}
	g.supervise()
	for _, r := range g.replicas {
		for _, rl := range r.relays {
			rl.Mend()
		}
		if r.down {
			g.reap(r, false)
			r.start(g.t)
		}
	}
}

// deleteSoakConsumer deletes the request consumer, trying again while the
// cluster answers with errors of an election.
func deleteSoakConsumer(ctx context.Context, js jetstream.JetStream) error {
	var err error
	for range 20 {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = js.DeleteConsumer(dctx, requestStream, consumerName)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("delete consumer: %w", err)
}

// stepDownLeader asks the leader of stream to step down (the JetStream API
// has it; nats.go's jetstream package does not).
func stepDownLeader(ctx context.Context, js jetstream.JetStream, stream string) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	msg, err := js.Conn().RequestWithContext(rctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil)
	if err != nil {
		return fmt.Errorf("leader stepdown: %w", err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("leader stepdown: %w", err)
	}
	if !resp.Success {
		if resp.Error != nil {
			return fmt.Errorf("leader stepdown: %s", resp.Error.Description)
		}
		return errors.New("leader stepdown refused")
	}
	return nil
}
