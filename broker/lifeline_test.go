package broker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestLifelineClosedForGood: a connection closed other than by Drain ends
// the lifeline's context and its actor with ErrConnectionClosed.
func TestLifelineClosedForGood(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	nc, _ := testenv.Connect(t, url)
	l := broker.Watch(t.Context(), nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a := l.Actor(time.Second)
	done := make(chan error, 1)
	go func() { done <- a.Execute() }()
	nc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrConnectionClosed) {
			t.Fatalf("actor returned %v, want ErrConnectionClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the actor did not notice the closed connection")
	}
	if !errors.Is(context.Cause(l.Context()), broker.ErrConnectionClosed) || !errors.Is(l.Err(), broker.ErrConnectionClosed) {
		t.Errorf("cause %v, Err %v: want ErrConnectionClosed", context.Cause(l.Context()), l.Err())
	}
}

// TestLifelineDrainIsNoFailure: the drain at shutdown closes the
// connection without an error.
func TestLifelineDrainIsNoFailure(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	nc, _ := testenv.Connect(t, url)
	l := broker.Watch(t.Context(), nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a := l.Actor(2 * time.Second)
	done := make(chan error, 1)
	go func() { done <- a.Execute() }()
	a.Interrupt(nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("actor returned %v after a drain, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not end")
	}
	if !nc.IsClosed() || l.Err() != nil {
		t.Errorf("closed %v, Err %v: want closed, nil", nc.IsClosed(), l.Err())
	}
}

// TestLifelineDrainAfterCloseKeepsReason: a drain that begins after the
// connection was closed for good (the consumer may notice the close before
// the closed handler has run) does not hide why it was closed.
func TestLifelineDrainAfterCloseKeepsReason(t *testing.T) {
	_, url := testenv.EmbeddedJetStream(t)
	nc, _ := testenv.Connect(t, url)
	l := broker.Watch(t.Context(), nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	nc.Close()
	l.Drain(2 * time.Second)
	if !errors.Is(l.Err(), broker.ErrConnectionClosed) {
		t.Errorf("Err after a close and a drain = %v, want ErrConnectionClosed", l.Err())
	}
}
