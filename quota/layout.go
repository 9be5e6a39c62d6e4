package quota

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
)

// Layout names the streams and subjects of the shared quota of the service
// named consumer; a window's primary count keeps the unsuffixed stream name.
type Layout struct {
	consumer string
	primary  []connector.Limit // one per window, by window
}

// NewLayout returns the layout of consumer's quota with primary's counts.
func NewLayout(consumer string, primary []connector.Limit) Layout {
	return Layout{consumer: consumer, primary: distinct(primary)}
}

// Primary returns each window's count in defaults, else the smallest in others.
func Primary(defaults []connector.Limit, others ...[]connector.Limit) []connector.Limit {
	out := slices.Clone(defaults)
	for _, list := range others {
		for _, l := range list {
			if !slices.ContainsFunc(defaults, func(d connector.Limit) bool { return d.Window == l.Window }) {
				out = append(out, l)
			}
		}
	}
	return distinct(out)
}

// Enforced returns the limits of all quotas (one list each), once, by window then count.
func Enforced(lists ...[]connector.Limit) []connector.Limit {
	var all []connector.Limit
	for _, list := range lists {
		all = append(all, distinct(list)...)
	}
	return unique(all)
}

// unique returns each limit once, by window then count.
func unique(limits []connector.Limit) []connector.Limit {
	out := slices.Clone(limits)
	slices.SortFunc(out, func(a, b connector.Limit) int {
		return cmp.Or(cmp.Compare(a.Window, b.Window), cmp.Compare(a.Count, b.Count))
	})
	return slices.Compact(out)
}

// Primary returns the primary limits the layout was built from.
func (y Layout) Primary() []connector.Limit { return slices.Clone(y.primary) }

// token names l's stream: the window's token, then "_<count>" unless primary.
func (y Layout) token(l connector.Limit) string {
	if slices.Contains(y.primary, l) {
		return windowToken(l.Window)
	}
	return windowToken(l.Window) + "_" + strconv.Itoa(l.Count)
}

// Stream is the name of l's stream.
func (y Layout) Stream(l connector.Limit) string { return "QUOTA_" + y.consumer + "_" + y.token(l) }

// prefix is the subject of l's stream without the registration key.
func (y Layout) prefix(l connector.Limit) string {
	return "alert_domains.quota." + y.consumer + "." + y.token(l) + "."
}

// Subject is the subject of registration key in l's stream.
func (y Layout) Subject(l connector.Limit, key string) string { return y.prefix(l) + key }

// StreamConfig is one limit's stream: a publish past Count per registration is refused.
func (y Layout) StreamConfig(l connector.Limit, replicas int, hold time.Duration) jetstream.StreamConfig {
	maxAge := MaxAge(l.Window, hold)
	return jetstream.StreamConfig{
		Name:                 y.Stream(l),
		Description:          fmt.Sprintf("alert-domains shared Defender quota: %d calls per %s per app registration", l.Count, l.Window),
		Subjects:             []string{y.prefix(l) + "*"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             max(replicas, 1),
		MaxMsgsPerSubject:    int64(l.Count),
		MaxAge:               maxAge,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           min(maxAge, time.Minute),
		MaxMsgSize:           1024,
		AllowDirect:          true,
	}
}

// distinct returns one limit per window, the smallest count, shortest window first.
func distinct(limits []connector.Limit) []connector.Limit {
	return slices.CompactFunc(unique(limits), func(a, b connector.Limit) bool { return a.Window == b.Window })
}
