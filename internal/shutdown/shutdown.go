// Package shutdown lets a process end, at once, the waits that shutdown may
// abandon (a request that only waits for the Defender quota has done
// nothing yet, and is better handed back to another replica than held to
// the shutdown timeout), without ending the work that must finish.
//
// The code that runs the work installs a Watcher in the work's context;
// the code that waits marks the wait with Abandonable. The watcher cancels
// the work's context when shutdown begins during such a wait.
package shutdown

import "context"

// Watcher is told that a wait shutdown may abandon begins; it returns the
// function to call when the wait ends.
type Watcher func() (end func())

type watcherKey struct{}

// WithWatcher returns ctx with w, told of every abandonable wait under it.
func WithWatcher(ctx context.Context, w Watcher) context.Context {
	return context.WithValue(ctx, watcherKey{}, w)
}

// Abandonable marks the start of a wait that shutdown may abandon; call end
// when the wait is over. Under a context without a Watcher it does nothing.
func Abandonable(ctx context.Context) (end func()) {
	if w, ok := ctx.Value(watcherKey{}).(Watcher); ok && w != nil {
		return w()
	}
	return func() {}
}
