package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/internal/lifecycle"
)

// ErrConnectionClosed is wrapped by the error of a connection that nats.go
// closed for good (the server refused the credentials twice in a row, or
// closed it), with the connection's last error.
var ErrConnectionClosed = errors.New("the NATS connection was closed")

// Lifeline watches the connection of a long-running process: a connection
// closed for good, other than by Drain, ends its Context and its Actor with
// an ErrConnectionClosed, so that the process stops and its supervisor
// restarts it rather than leaving it up doing nothing.
type Lifeline struct {
	nc       *nats.Conn
	logger   *slog.Logger
	ctx      context.Context
	cancel   context.CancelCauseFunc
	closed   chan struct{}
	err      atomic.Pointer[error]
	draining atomic.Bool
}

// Watch starts watching nc, which it owns from now on (it replaces nc's
// closed handler). Its Context is ctx, also ended by such a close.
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

// Context is the context given to Watch, also ended (with the Err as its
// cause) when the connection is closed for good.
func (l *Lifeline) Context() context.Context { return l.ctx }

// Err is the ErrConnectionClosed of a connection closed for good, or nil.
func (l *Lifeline) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Drain flushes and closes the connection, waiting until it is closed, at
// most timeout; then it closes the connection as it is.
func (l *Lifeline) Drain(timeout time.Duration) {
	defer l.cancel(nil)
	t := time.NewTimer(timeout)
	defer t.Stop()
	if l.nc.IsClosed() {
		// Closed for good before the drain (the consumer may notice
		// before the closed handler has run): the handler records why.
		select {
		case <-l.closed:
		case <-t.C:
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
	case <-t.C:
		l.logger.Warn("NATS drain timed out, closing")
		l.nc.Close()
	}
}

// Actor runs the connection in a lifecycle.Group: it ends the group with
// Err when the connection is closed for good, and drains the connection
// (Drain, at most drainTimeout) when the group stops.
func (l *Lifeline) Actor(drainTimeout time.Duration) lifecycle.Actor {
	stop := make(chan struct{})
	var once sync.Once
	return lifecycle.Actor{
		Name: "NATS connection",
		Execute: func() error {
			select {
			case <-l.closed:
				return l.Err()
			case <-stop:
				l.Drain(drainTimeout)
				return l.Err()
			}
		},
		Interrupt: func(error) { once.Do(func() { close(stop) }) },
	}
}
