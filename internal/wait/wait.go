// Package wait lets code that is about to block for a while (for the
// quota, a cooldown, a retry's backoff, another delivery's call) tell the
// worker pool that runs it. The pool gives the worker to other work
// meanwhile, so that a tenant out of quota holds no worker another tenant
// could use; and while the wait is abandonable (a request that only waits
// for the quota has done nothing yet), shutdown cancels the work's context
// rather than hold it to the shutdown timeout.
package wait

import "context"

// Waiter is told that a wait begins; it returns the function to call when
// the wait ends, which may block until the pool has a worker again.
type Waiter func(abandonable bool) (end func())

type waiterKey struct{}

// With returns ctx with w, told of every wait under it.
func With(ctx context.Context, w Waiter) context.Context {
	return context.WithValue(ctx, waiterKey{}, w)
}

// Begin marks the start of a wait; call end when it is over. Under a
// context without a Waiter it does nothing.
func Begin(ctx context.Context, abandonable bool) (end func()) {
	if w, ok := ctx.Value(waiterKey{}).(Waiter); ok && w != nil {
		return w(abandonable)
	}
	return func() {}
}

// Lazy is a wait begun at most once, at the first of several places that
// may block, so that a path that never blocks costs nothing.
type Lazy struct {
	ctx         context.Context
	abandonable bool
	end         func()
}

// NewLazy returns a Lazy for the work of ctx.
func NewLazy(ctx context.Context, abandonable bool) *Lazy {
	return &Lazy{ctx: ctx, abandonable: abandonable}
}

// Begin marks the wait, unless it is marked already.
func (l *Lazy) Begin() {
	if l.end == nil {
		l.end = Begin(l.ctx, l.abandonable)
	}
}

// End ends the wait if Begin marked it.
func (l *Lazy) End() {
	if l.end != nil {
		l.end()
		l.end = nil
	}
}
