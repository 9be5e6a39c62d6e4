// Package wait lets code about to block for a while tell the worker pool,
// which gives the worker to other work meanwhile; an abandonable wait is
// cancelled at shutdown.
package wait

import "context"

// Waiter is told that a wait begins; the end it returns may block until the
// pool has a worker again.
type Waiter func(abandonable bool) (end func())

type waiterKey struct{}

// With returns ctx with w, told of every wait under it.
func With(ctx context.Context, w Waiter) context.Context {
	return context.WithValue(ctx, waiterKey{}, w)
}

// Begin marks the start of a wait; call end when it is over.
func Begin(ctx context.Context, abandonable bool) (end func()) {
	if w, ok := ctx.Value(waiterKey{}).(Waiter); ok && w != nil {
		return w(abandonable)
	}
	return func() {}
}

// Lazy is a wait begun at most once, at the first place that blocks.
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
