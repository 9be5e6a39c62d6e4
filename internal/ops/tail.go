package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// TailOptions select the results a Tail follows.
type TailOptions struct {
	Tenant            string    // only this tenant's results; "" for every one
	Failed, Succeeded bool      // only failures, only successes
	Since             time.Time // zero: only the results stored from now on
}

// Tail follows the results of a stream as they are stored, believing only
// those the service wrote.
type Tail struct {
	Subjects []string // the result subjects read, plain and per tenant
	tenant   string
	plain    map[string]bool
	r        *consumer.Reader
	believer *Believer
}

// OpenTail starts following the results that o selects.
func OpenTail(ctx context.Context, js jetstream.JetStream, cfg *config.Config, o TailOptions) (*Tail, error) {
	t := &Tail{tenant: o.Tenant, plain: map[string]bool{}}
	for _, s := range []string{cfg.SuccessSubject, cfg.FailureSubject} {
		if (s == cfg.SuccessSubject && o.Failed) || (s == cfg.FailureSubject && o.Succeeded) {
			continue
		}
		t.plain[s] = true
		t.Subjects = append(t.Subjects, s)
	}
	for _, s := range t.Subjects[:len(t.plain)] {
		t.Subjects = append(t.Subjects, s+"."+cmp.Or(o.Tenant, "*"))
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: t.Subjects, DeliverPolicy: jetstream.DeliverNewPolicy}
	if !o.Since.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.Since
	}
	var err error
	if t.believer, err = NewBeliever(ctx, js, cfg); err != nil {
		return nil, err
	}
	if t.r, err = consumer.Open(ctx, js, cfg.ResultStream, occ); err != nil {
		return nil, err
	}
	return t, nil
}

// keeps reports whether the result is followed: with a tenant, one on a
// plain subject when its tenant field names it.
func (t *Tail) keeps(subject string, data []byte) bool {
	var r struct {
		Tenant string `json:"tenant"`
	}
	return t.tenant == "" || !t.plain[subject] || (json.Unmarshal(data, &r) == nil && r.Tenant == t.tenant)
}

// Next waits for the next result followed, and returns it with its tenant.
func (t *Tail) Next(ctx context.Context) (jetstream.Msg, *message.Result, string, error) {
	for {
		msg, _, err := t.r.Next(ctx)
		if err != nil {
			return nil, nil, "", err
		}
		if !t.keeps(msg.Subject(), msg.Data()) {
			continue
		}
		res, err := t.believer.Believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			return nil, nil, "", err
		}
		if res != nil {
			tenant, _ := t.believer.Subjects.Tenant(msg.Subject())
			return msg, res, tenant, nil
		}
	}
}

// Ignored is how many results were not believed so far.
func (t *Tail) Ignored() int { return t.believer.Ignored }

// Stop ends the Tail.
func (t *Tail) Stop() { t.r.Stop() }
