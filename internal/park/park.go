// Package park lets code that is about to wait for a while (for the
// Defender quota, a cooldown, a retry's backoff) tell the worker pool that
// runs it, so that the pool can give the worker to other work meanwhile:
// a tenant out of quota then holds no worker that another tenant's request
// could use.
//
// The pool installs a Parker in the work's context; the code that waits
// calls Wait at the moment it knows it must block, and the returned end
// when the wait is over. end may block until the pool has a worker again.
package park

import "context"

// Parker is told that a wait begins; it returns the function to call when
// the wait ends.
type Parker func() (end func())

type parkerKey struct{}

// WithParker returns ctx with p, told of every wait under it.
func WithParker(ctx context.Context, p Parker) context.Context {
	return context.WithValue(ctx, parkerKey{}, p)
}

// Wait marks the start of a wait; call end when it is over. Under a context
// without a Parker it does nothing.
func Wait(ctx context.Context) (end func()) {
	if p, ok := ctx.Value(parkerKey{}).(Parker); ok && p != nil {
		return p()
	}
	return func() {}
}

// Lazy is a Wait begun at most once, at the first of several places that
// may block: Begin marks the wait (the first time), End ends it if it began.
type Lazy struct {
	ctx context.Context
	end func()
}

// NewLazy returns a Lazy for the work of ctx.
func NewLazy(ctx context.Context) *Lazy { return &Lazy{ctx: ctx} }

// Begin marks the wait, once.
func (l *Lazy) Begin() {
	if l.end == nil {
		l.end = Wait(l.ctx)
	}
}

// End ends the wait if Begin marked it.
func (l *Lazy) End() {
	if l.end != nil {
		l.end()
		l.end = nil
	}
}
