package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
)

// Every serve process answers on its consumer's presence subject with who
// it is and whether it is bound; the gather ends presenceQuiet after the
// last answer, presenceWait at most.
const (
	presenceWait  = time.Second
	presenceQuiet = 300 * time.Millisecond
)

func presenceSubject(cfg *config.Config) string {
	return "_ALERT_DOMAINS.REPLICAS." + cfg.RequestStream + "." + cfg.ConsumerName
}

// Replica is one replica's answer.
type Replica struct {
	ID          string    `json:"id"` // new at every start
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Started     time.Time `json:"started"`
	Concurrency int       `json:"concurrency"`
	Bound       bool      `json:"bound"`
	Issue       string    `json:"issue,omitempty"` // why it is not bound
}

// ServePresence answers presence questions on nc until stop is called;
// ready is the service's readiness (nil: bound to the consumer).
func ServePresence(nc *nats.Conn, cfg *config.Config, started time.Time, ready func() error) (stop func(), err error) {
	host, _ := os.Hostname()
	self := Replica{ID: strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix), Host: cmp.Or(host, "unknown"), PID: os.Getpid(), Started: started.UTC(), Concurrency: cfg.Concurrency}
	sub, err := nc.Subscribe(presenceSubject(cfg), func(m *nats.Msg) {
		p := self
		if err := ready(); err != nil {
			p.Issue = err.Error()
		}
		p.Bound = p.Issue == ""
		// Only to an inbox: the service's user may publish results and JetStream API calls.
		if data, err := json.Marshal(p); err == nil && strings.HasPrefix(m.Reply, nats.InboxPrefix) {
			_ = m.Respond(data) // the asker may be gone; it asks again
		}
	})
	if err != nil {
		return nil, fmt.Errorf("presence subscription: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// ReadReplicas gathers the presence answers, sorted by host and process ID.
func ReadReplicas(ctx context.Context, nc *nats.Conn, cfg *config.Config) ([]Replica, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err == nil {
		defer func() { _ = sub.Unsubscribe() }()
		err = nc.PublishRequest(presenceSubject(cfg), inbox, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, presenceWait)
	defer cancel()
	var out []Replica
	for wait := presenceWait; ; wait = presenceQuiet {
		next, cancelNext := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(next)
		cancelNext()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) {
			break // no replica at all: the server says so at once
		}
		if err != nil {
			return nil, fmt.Errorf("presence: %w", err)
		}
		var p Replica
		if json.Unmarshal(msg.Data, &p) == nil && p.ID != "" && !slices.ContainsFunc(out, func(r Replica) bool { return r.ID == p.ID }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Replica) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.PID, b.PID), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
