package testenv

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedJetStream starts an in-process nats-server with JetStream, stored
// in a temporary directory, on a random loopback port. It returns the server
// and its client URL, and shuts the server down at cleanup.
func EmbeddedJetStream(tb testing.TB) (*server.Server, string) {
	tb.Helper()
	s := StartEmbedded(tb, &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
	})
	return s, s.ClientURL()
}

// StartEmbedded starts an in-process nats-server with opts (quiet, and
// deaf to the process's signals), waits until it takes connections, and
// shuts it down at cleanup: the one way tests run a server in process with
// options of their own (users, accounts, limits).
func StartEmbedded(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("testenv: embedded nats-server: %v", err)
	}
	go s.Start()
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatalf("testenv: embedded nats-server not ready within 10s")
	}
	return s
}

// Restartable is an in-process nats-server with JetStream that a test can
// stop and start again on the same port and store, as after a broker
// restart.
type Restartable struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server
}

// RestartableJetStream starts a Restartable; it is stopped at cleanup.
func RestartableJetStream(tb testing.TB) *Restartable {
	tb.Helper()
	r := &Restartable{tb: tb, opts: server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir()}}
	r.Start()
	r.opts.Port = r.srv.Addr().(*net.TCPAddr).Port
	tb.Cleanup(r.Stop)
	return r
}

// Start starts the server (again), on the port and store it had.
func (r *Restartable) Start() {
	r.tb.Helper()
	opts := r.opts
	r.srv = StartEmbedded(r.tb, &opts)
}

// Stop shuts the server down; Start brings it back.
func (r *Restartable) Stop() {
	r.srv.Shutdown()
	r.srv.WaitForShutdown()
}

// URL is the server's client URL.
func (r *Restartable) URL() string { return r.srv.ClientURL() }
