// Package timing holds the one way the service sleeps.
package timing

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends or wake (when not nil) is closed or
// receives; it reports whether d passed or wake woke it (false: ctx ended).
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	select {
	case <-time.After(d):
		return true
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}
