package testenv

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	natsStartTimeout = 30 * time.Second
	natsStopTimeout  = 15 * time.Second
	natsPollInterval = 20 * time.Millisecond
)

// NATSProcess is a nats-server child process with JetStream on file
// storage; its port and store survive [NATSProcess.Restart].
type NATSProcess struct {
	bin  string
	name string // server name in a cluster
	args []string
	port int
	out  *output // every run's output, in order
	proc *Process
}

// StartNATS starts a nats-server built by [NATSServerBinary] on free
// loopback ports and a temporary store, and waits until JetStream answers.
func StartNATS(tb testing.TB) *NATSProcess {
	tb.Helper()
	n := launchNATS(tb, NATSServerBinary(tb), "", FreePort(tb))
	n.waitReady(tb)
	return n
}

// launchNATS starts a server of bin on port with a new store, without
// waiting for it; name is its server name in a cluster.
func launchNATS(tb testing.TB, bin, name string, port int, extra ...string) *NATSProcess {
	tb.Helper()
	n := &NATSProcess{bin: bin, name: name, port: port, out: &output{}}
	n.args = []string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", tb.TempDir()}
	if name != "" {
		n.args = append(n.args, "-n", name)
	}
	n.args = append(n.args, extra...)
	tb.Cleanup(func() {
		release(tb, strings.TrimSpace("nats-server "+n.name), n.proc, syscall.SIGTERM, natsStopTimeout)
	})
	n.proc = startProcess(tb, n.bin, nil, n.args, n.out)
	return n
}

// URL returns the client URL, the same across restarts.
func (n *NATSProcess) URL() string {
	return "nats://127.0.0.1:" + strconv.Itoa(n.port)
}

// PID returns the process ID of the current run.
func (n *NATSProcess) PID() int { return n.proc.PID() }

// Stop shuts the server down with SIGTERM, killing it if it lingers.
func (n *NATSProcess) Stop(tb testing.TB) {
	tb.Helper()
	if err := n.proc.stop(syscall.SIGTERM, natsStopTimeout); err != nil {
		tb.Fatalf("testenv: nats-server: %v", err)
	}
}

// Kill ends the server with SIGKILL, as a crash would.
func (n *NATSProcess) Kill(tb testing.TB) {
	tb.Helper()
	if err := n.proc.stop(syscall.SIGKILL, natsStopTimeout); err != nil {
		tb.Fatalf("testenv: nats-server: %v", err)
	}
}

// Restart stops the server if it runs and starts it again on the same port
// and store, waiting until JetStream answers.
func (n *NATSProcess) Restart(tb testing.TB) {
	tb.Helper()
	if !n.proc.exited() {
		n.Stop(tb)
	}
	n.out.add("--- testenv: restart ---")
	n.proc = startProcess(tb, n.bin, nil, n.args, n.out)
	n.waitReady(tb)
}

// JetStream returns a JetStream context on a new connection that reconnects
// without limit, so it survives restarts.
func (n *NATSProcess) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	_, js := Connect(tb, n.URL(), reconnecting...)
	return js
}

// waitReady polls until JetStream answers, failing the test if the process
// exits first or the start time-out passes.
func (n *NATSProcess) waitReady(tb testing.TB) {
	tb.Helper()
	var err error
	Eventually(tb, natsStartTimeout, natsPollInterval, func() bool {
		err = probeJS(n.URL(), time.Second, func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.AccountInfo(ctx)
			return err
		})
		return err == nil || n.proc.exited()
	}, "nats-server at %s ready (last: %v)", n.URL(), lazyErr{&err})
	if err != nil {
		tb.Fatalf("testenv: nats-server at %s exited before it was ready (%v): %v", n.URL(), n.proc.cmd.ProcessState, err)
	}
}

// probeJS calls f within timeout on a one-off, non-reconnecting connection.
func probeJS(url string, timeout time.Duration, f func(context.Context, jetstream.JetStream) error) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return f(ctx, js)
}
