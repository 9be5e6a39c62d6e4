package testenv

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedJetStream starts an in-process nats-server with JetStream, stored
// in a temporary directory, on a random loopback port. It returns the server
// and its client URL, and shuts the server down at cleanup.
func EmbeddedJetStream(tb testing.TB) (*server.Server, string) {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		tb.Fatalf("testenv: embedded nats-server: %v", err)
	}
	s.Start()
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatalf("testenv: embedded nats-server not ready within 10s")
	}
	return s, s.ClientURL()
}
