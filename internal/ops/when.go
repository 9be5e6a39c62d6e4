package ops

import (
	"fmt"
	"strings"
	"time"
)

// ParseWhen reads a point in time: a Go duration back from now ("2h",
// "30m") or an RFC 3339 time.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: the duration back from now must be more than 0", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration back from now (2h, 30m) nor an RFC 3339 time (2026-11-27T09:00:00Z)", s)
	}
	return t, nil
}
