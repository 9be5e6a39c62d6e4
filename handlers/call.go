package handlers

import (
	"context"
	"errors"
	"sync"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/wait"
	"github.com/alert-domains/alert-domains/message"
)

// calls makes one call at a time per alert and tenant; requests that come
// meanwhile wait for its answer.
type calls struct {
	tenants Tenants

	mu       sync.Mutex
	inFlight map[string]*flight
}

type flight struct {
	done chan struct{} // closed when res and err are set
	res  connector.Result
	err  error
}

// errNoAnswer is what waiters see of a call that panicked: they ask again.
var errNoAnswer = errors.New("the shared call ended without an answer")

// domains asks rt's tenant's API for alertID, or waits for the call for key
// in flight (shared); an answer of an interrupted call is not taken.
func (c *calls) domains(ctx context.Context, rt route, key, alertID string) (res connector.Result, shared bool, err error) {
	for {
		c.mu.Lock()
		f, waiting := c.inFlight[key]
		if !waiting {
			f = &flight{done: make(chan struct{}), err: errNoAnswer}
			c.inFlight[key] = f
		}
		c.mu.Unlock()
		if !waiting {
			return c.lead(ctx, rt, key, alertID, f)
		}
		end := wait.Begin(ctx, false)
		select {
		case <-ctx.Done():
			end()
			return connector.Result{}, false, &connector.Error{Kind: message.KindUnavailable, Message: "interrupted", Err: ctx.Err()}
		case <-f.done:
			end()
			if errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded) || errors.Is(f.err, errNoAnswer) {
				continue // the call's own request was interrupted, or it panicked
			}
			return connector.Result{Domains: f.res.Domains, GraphAlertID: f.res.GraphAlertID}, true, f.err
		}
	}
}

// lead makes f's call and hands its answer to the waiters, even on a panic.
func (c *calls) lead(ctx context.Context, rt route, key, alertID string, f *flight) (connector.Result, bool, error) {
	defer func() {
		c.mu.Lock()
		delete(c.inFlight, key)
		c.mu.Unlock()
		close(f.done)
	}()
	f.res, f.err = c.tenants.Domains(ctx, rt.tenant, alertID)
	return f.res, false, f.err
}
