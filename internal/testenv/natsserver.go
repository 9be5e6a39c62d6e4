package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	defaultNATSStartTimeout = 30 * time.Second
	natsStopTimeout         = 15 * time.Second
	natsPollInterval        = 20 * time.Millisecond
)

// NATSOption configures [StartNATS].
type NATSOption func(*natsConfig)

type natsConfig struct {
	args         []string
	startTimeout time.Duration
}

// WithNATSArgs appends arguments to the nats-server command line, for
// example a configuration file ("-c", path).
func WithNATSArgs(args ...string) NATSOption {
	return func(c *natsConfig) { c.args = append(c.args, args...) }
}

// WithNATSStartTimeout sets how long a start or restart may take to accept
// connections with JetStream ready. The default is 30 seconds.
func WithNATSStartTimeout(d time.Duration) NATSOption {
	return func(c *natsConfig) { c.startTimeout = d }
}

// NATSProcess is a nats-server running as a child process with JetStream on
// file storage. Its port and store directory stay the same across
// [NATSProcess.Restart], so streams and their messages survive it.
type NATSProcess struct {
	bin          string
	name         string // server name in a cluster
	args         []string
	port         int
	httpPort     int
	storeDir     string
	startTimeout time.Duration
	out          *output // every run's output, in order
	proc         *Process
}

// StartNATS starts a nats-server built by [NATSServerBinary] on free
// loopback ports with JetStream stored in a temporary directory, and waits
// until JetStream answers. The server is stopped at cleanup, and its output
// is logged when the test has failed.
func StartNATS(tb testing.TB, opts ...NATSOption) *NATSProcess {
	tb.Helper()
	cfg := natsConfig{startTimeout: defaultNATSStartTimeout}
	for _, opt := range opts {
		opt(&cfg)
	}
	n := &NATSProcess{
		bin:          NATSServerBinary(tb),
		port:         FreePort(tb),
		storeDir:     tb.TempDir(),
		startTimeout: cfg.startTimeout,
		out:          newOutput(),
	}
	for n.httpPort == 0 || n.httpPort == n.port {
		n.httpPort = FreePort(tb)
	}
	n.args = append([]string{
		"-js",
		"-a", "127.0.0.1",
		"-p", strconv.Itoa(n.port),
		"--http_port", strconv.Itoa(n.httpPort),
		"-sd", n.storeDir,
	}, cfg.args...)
	tb.Cleanup(func() {
		if n.running() {
			if err := n.stop(syscall.SIGTERM); err != nil {
				tb.Errorf("testenv: nats-server: %v", err)
			}
		}
		if tb.Failed() {
			tb.Logf("nats-server output:\n%s", n.out.String())
		}
	})
	if err := n.start(); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return n
}

// URL returns the client URL, the same across restarts.
func (n *NATSProcess) URL() string {
	return "nats://127.0.0.1:" + strconv.Itoa(n.port)
}

// MonitorURL returns the base URL of the HTTP monitoring endpoints (/varz,
// /jsz, ...).
func (n *NATSProcess) MonitorURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(n.httpPort)
}

// StoreDir returns the JetStream store directory, kept across restarts.
func (n *NATSProcess) StoreDir() string { return n.storeDir }

// PID returns the process ID of the current run.
func (n *NATSProcess) PID() int { return n.proc.PID() }

// Stop shuts the server down with SIGTERM and waits for it to exit; it is
// killed if it does not exit in time.
func (n *NATSProcess) Stop(tb testing.TB) {
	tb.Helper()
	if err := n.stop(syscall.SIGTERM); err != nil {
		tb.Fatalf("testenv: nats-server: %v", err)
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit.
func (n *NATSProcess) Kill(tb testing.TB) {
	tb.Helper()
	if err := n.stop(syscall.SIGKILL); err != nil {
		tb.Fatalf("testenv: nats-server: %v", err)
	}
}

// Restart stops the server gracefully if it runs, then starts it again on
// the same port with the same store directory and waits until JetStream
// answers. Clients that reconnect find their streams and messages.
func (n *NATSProcess) Restart(tb testing.TB) {
	tb.Helper()
	if n.running() {
		n.Stop(tb)
	}
	n.out.add("--- testenv: restart ---")
	if err := n.start(); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
}

// Conn returns a new connection to the server that reconnects without limit
// (so it survives restarts) and is closed at cleanup.
func (n *NATSProcess) Conn(tb testing.TB) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(n.URL(),
		nats.Name("testenv"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
	)
	if err != nil {
		tb.Fatalf("testenv: connect to %s: %v", n.URL(), err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection from
// [NATSProcess.Conn].
func (n *NATSProcess) JetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(n.Conn(tb))
	if err != nil {
		tb.Fatalf("testenv: jetstream: %v", err)
	}
	return js
}

func (n *NATSProcess) running() bool {
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.Done():
		return false
	default:
		return true
	}
}

func (n *NATSProcess) start() error {
	proc, err := startProcess(n.bin, baseEnv(), n.args, n.out)
	if err != nil {
		return err
	}
	n.proc = proc
	if err := n.waitReady(); err != nil {
		if stopErr := n.stop(syscall.SIGKILL); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return err
	}
	return nil
}

// waitReady polls until a client can connect and read the JetStream account
// information, or the process exits, or the start time-out passes.
func (n *NATSProcess) waitReady() error {
	deadline := time.NewTimer(n.startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(natsPollInterval)
	defer tick.Stop()
	var last error
	for {
		if last = n.jetStreamReady(); last == nil {
			return nil
		}
		select {
		case <-n.proc.Done():
			return fmt.Errorf("nats-server exited before it was ready (%v): %w",
				n.proc.cmd.ProcessState, last)
		case <-deadline.C:
			return fmt.Errorf("nats-server not ready within %v: %w", n.startTimeout, last)
		case <-tick.C:
		}
	}
}

func (n *NATSProcess) jetStreamReady() error {
	nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// stop sends sig and waits for the exit, killing the process when it does
// not exit in time.
func (n *NATSProcess) stop(sig syscall.Signal) error {
	if err := n.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	if _, err := n.proc.Wait(natsStopTimeout); err == nil {
		return nil
	} else if !errors.Is(err, ErrStillRunning) {
		return err
	}
	if err := n.proc.Kill(); err != nil {
		return err
	}
	if _, err := n.proc.Wait(natsStopTimeout); err != nil {
		return err
	}
	return fmt.Errorf("killed after no exit within %v of %v", natsStopTimeout, sig)
}
