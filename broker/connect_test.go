package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
)

// TestConnectNamesTheServer: a server that accepts and never answers ends
// the connect with its context, in an error that names the server without
// the password of its URL.
func TestConnectNamesTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16) // held open, silent, until the end
	t.Cleanup(func() {
		_ = ln.Close()
		for len(accepted) > 0 {
			_ = (<-accepted).Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- c:
			default:
				_ = c.Close()
			}
		}
	}()
	url := "alice:s3cret@" + ln.Addr().String()
	cfg, err := config.Load(config.MapEnv(map[string]string{"NATS_URL": url}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = broker.Connect(ctx, cfg, "", "connect test", slog.New(slog.DiscardHandler))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connect to NATS at nats://"+ln.Addr().String()) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Connect = %v, want the deadline, naming nats://%s without the password", err, ln.Addr())
	}
}
