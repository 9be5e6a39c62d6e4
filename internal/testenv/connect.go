package testenv

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// reconnecting are the options of connections that outlive server restarts.
var reconnecting = []nats.Option{nats.Name("testenv"), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}

// Connect connects to url (closed at cleanup) and returns the connection
// with a JetStream context on it.
func Connect(tb testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatalf("testenv: connect to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("testenv: jetstream: %v", err)
	}
	return nc, js
}
