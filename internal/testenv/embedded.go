package testenv

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedJetStream starts an in-process JetStream server on a random
// loopback port and returns it with its client URL.
func EmbeddedJetStream(tb testing.TB) (*server.Server, string) {
	tb.Helper()
	s := StartEmbedded(tb, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: tb.TempDir()})
	return s, s.ClientURL()
}

// StartEmbedded starts an in-process nats-server with opts, quiet and deaf
// to signals, and waits until it takes connections.
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
