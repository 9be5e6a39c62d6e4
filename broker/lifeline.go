package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/internal/lifecycle"
)

// ErrConnectionClosed wraps the last error of a connection nats.go closed for good.
var ErrConnectionClosed = errors.New("the NATS connection was closed")

// Lifeline watches a connection: one closed for good, other than by Drain,
// ends its Context and its Actor with ErrConnectionClosed, so the process stops.
type Lifeline struct {
	nc       *nats.Conn
	logger   *slog.Logger
	ctx      context.Context
	cancel   context.CancelCauseFunc
	closed   chan struct{}
	err      atomic.Pointer[error]
	draining atomic.Bool
}

// Watch starts watching nc, replacing its closed handler.
func Watch(ctx context.Context, nc *nats.Conn, logger *slog.Logger) *Lifeline {
	l := &Lifeline{nc: nc, logger: logger, closed: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	nc.SetClosedHandler(func(nc *nats.Conn) {
		if !l.draining.Load() {
			err := ErrConnectionClosed
			if last := nc.LastError(); last != nil {
				err = fmt.Errorf("%w: %w", ErrConnectionClosed, last)
			}
			l.err.Store(&err)
			l.cancel(err)
		}
		close(l.closed)
	})
	return l
}

// Context is Watch's ctx, also ended, with Err as cause, by a close for good.
func (l *Lifeline) Context() context.Context { return l.ctx }

// Err is the ErrConnectionClosed of a connection closed for good, or nil.
func (l *Lifeline) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Drain drains the connection, closing it after at most timeout.
func (l *Lifeline) Drain(timeout time.Duration) {
	defer l.cancel(nil)
	expired := time.After(timeout)
	if l.nc.IsClosed() {
		select { // closed for good: wait for the handler to record why
		case <-l.closed:
		case <-expired:
		}
		return
	}
	l.draining.Store(true)
	if err := l.nc.Drain(); err != nil {
		l.nc.Close()
		return
	}
	select {
	case <-l.closed:
	case <-expired:
		l.logger.Warn("NATS drain timed out, closing")
		l.nc.Close()
	}
}

// Actor ends its lifecycle.Group with Err on a close for good, and drains
// the connection when the group stops.
func (l *Lifeline) Actor(drainTimeout time.Duration) lifecycle.Actor {
	return lifecycle.Func("NATS connection", func(stop context.Context) error {
		select {
		case <-l.closed:
		case <-stop.Done():
			l.Drain(drainTimeout)
		}
		return l.Err()
	})
}
