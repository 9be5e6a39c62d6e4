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
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
)

// Every serve process answers on its consumer's presence subject with who
// it is and whether it is bound to the consumer, so that `status` lists the
// replicas that run now: a process that stopped or crashed, or that lost
// NATS, simply does not answer.

// Presence answers arrive within presenceWait of the question; the gather
// ends earlier once presenceQuiet has passed without another answer.
const (
	presenceWait  = time.Second
	presenceQuiet = 300 * time.Millisecond
)

// presenceSubject is where the replicas of cfg's consumer answer.
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

// A serve process also asks the presence question itself, every
// presenceBeat, with its ID in the headerReplica header, so that every
// replica hears of every other within a beat (a new replica at once, by
// its first question and the answers to it); one not heard of for
// presenceLease is taken to be gone. Whether others run decides whether
// Defender calls are shared with them (see handlers.SharedFlights.Share).
const (
	presenceBeat  = 2 * time.Second
	presenceLease = 3 * presenceBeat
	headerReplica = "Alert-Domains-Replica"
)

// ServePresence answers presence questions on nc until stop is called;
// ready is the service's readiness (nil: bound to the consumer). With
// others, it also asks the question every presenceBeat and calls others
// with true when another serve replica of the consumer is first heard of,
// and with false when none has been for presenceLease.
func ServePresence(nc *nats.Conn, cfg *config.Config, started time.Time, ready func() error, others func(bool)) (stop func(), err error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	self := Replica{ID: strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix), Host: host, PID: os.Getpid(), Started: started.UTC(), Concurrency: cfg.Concurrency}
	var tracker *peerTracker
	if others != nil {
		tracker = &peerTracker{self: self.ID, change: others}
	}
	sub, err := nc.Subscribe(presenceSubject(cfg), func(m *nats.Msg) {
		if tracker != nil && m.Header != nil {
			tracker.heard(m.Header.Get(headerReplica))
		}
		p := self
		if err := ready(); err != nil {
			p.Issue = err.Error()
		} else {
			p.Bound = true
		}
		if data, err := json.Marshal(p); err == nil {
			_ = m.Respond(data) // the asker may be gone; it asks again
		}
	})
	if err != nil {
		return nil, fmt.Errorf("presence subscription: %w", err)
	}
	if tracker == nil {
		return func() { _ = sub.Unsubscribe() }, nil
	}
	inbox := nc.NewInbox()
	answers, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		var p Replica
		if json.Unmarshal(m.Data, &p) == nil {
			tracker.heard(p.ID)
		}
	})
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("presence subscription: %w", err)
	}
	done, beating := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beating)
		t := time.NewTicker(presenceBeat)
		defer t.Stop()
		for {
			q := nats.NewMsg(presenceSubject(cfg))
			q.Reply = inbox
			q.Header.Set(headerReplica, self.ID)
			_ = nc.PublishMsg(q) // disconnected: the next beat asks again
			tracker.expire(time.Now())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-beating
		_ = answers.Unsubscribe()
		_ = sub.Unsubscribe()
	}, nil
}

// peerTracker follows whether another serve replica has been heard of
// within presenceLease.
type peerTracker struct {
	self   string
	change func(others bool)

	mu     sync.Mutex
	last   time.Time
	others bool
}

// heard notes the replica id (a question's or an answer's); "" is a
// question of status, or of a replica too old to say who it is.
func (p *peerTracker) heard(id string) {
	if id == "" || id == p.self {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = time.Now()
	if !p.others {
		p.others = true
		p.change(true)
	}
}

// expire notes that no other replica has been heard of for presenceLease.
func (p *peerTracker) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.others && now.Sub(p.last) > presenceLease {
		p.others = false
		p.change(false)
	}
}

// ReadReplicas asks the replicas of cfg's consumer who they are and
// gathers the answers, sorted by host and process ID.
func ReadReplicas(ctx context.Context, nc *nats.Conn, cfg *config.Config) ([]Replica, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(presenceSubject(cfg), inbox, nil); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, presenceWait)
	defer cancel()
	var out []Replica
	seen := map[string]bool{}
	for {
		wait := presenceWait
		if len(out) > 0 {
			wait = presenceQuiet
		}
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
		if json.Unmarshal(msg.Data, &p) != nil || p.ID == "" || seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Replica) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.PID, b.PID), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
