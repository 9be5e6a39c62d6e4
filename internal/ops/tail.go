package ops

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// TailFilter selects the results a Tail follows.
type TailFilter struct {
	Tenant           string // only this tenant's results; "" for every one
	Success, Failure string // SUCCESS_SUBJECT and FAILURE_SUBJECT
}

// Subjects are the result subjects to read: each in both forms, plain and
// per tenant; with a tenant, its own subjects and the plain ones.
func (f TailFilter) Subjects(failed, succeeded bool) []string {
	var plain []string
	switch {
	case failed:
		plain = []string{f.Failure}
	case succeeded:
		plain = []string{f.Success}
	default:
		plain = []string{f.Success, f.Failure}
	}
	out := slices.Clone(plain)
	for _, s := range plain {
		if f.Tenant != "" {
			out = append(out, s+"."+f.Tenant)
		} else {
			out = append(out, broker.TenantSubject(s))
		}
	}
	return out
}

// Keeps reports whether the result data stored on subject is followed: with
// a tenant, a result on a plain subject is its tenant's when its tenant
// field names it (the per-tenant subjects read are the tenant's own).
func (f TailFilter) Keeps(subject string, data []byte) bool {
	if f.Tenant == "" || (subject != f.Success && subject != f.Failure) {
		return true
	}
	var r struct {
		Tenant string `json:"tenant"`
	}
	return json.Unmarshal(data, &r) == nil && r.Tenant == f.Tenant
}

// Tail follows the results of a stream as they are stored, believing only
// those the service wrote (each checked against its request).
type Tail struct {
	r        *consumer.Reader
	filter   TailFilter
	believer *believer
}

// OpenTail starts following the results of cfg's result stream that occ
// selects (its FilterSubjects from filter.Subjects) and filter keeps. The
// errors are the server's as they are, jetstream.ErrStreamNotFound among
// them.
func OpenTail(ctx context.Context, js jetstream.JetStream, cfg *config.Config, occ jetstream.OrderedConsumerConfig, filter TailFilter) (*Tail, error) {
	if _, err := js.Stream(ctx, cfg.ResultStream); err != nil {
		return nil, err
	}
	b, err := newBeliever(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	r, err := consumer.Open(ctx, js, cfg.ResultStream, occ)
	if err != nil {
		return nil, err
	}
	return &Tail{r: r, filter: filter, believer: b}, nil
}

// Next waits for the next result the filter keeps and the service wrote,
// and returns it with its tenant (the one its subject names).
func (t *Tail) Next(ctx context.Context) (jetstream.Msg, *message.Result, string, error) {
	for {
		msg, _, err := t.r.Next(ctx)
		if err != nil {
			return nil, nil, "", err
		}
		if !t.filter.Keeps(msg.Subject(), msg.Data()) {
			continue
		}
		res, _, err := t.believer.believe(ctx, msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			return nil, nil, "", err
		}
		if res != nil {
			tenant, _ := t.believer.subjects.Tenant(msg.Subject())
			return msg, res, tenant, nil
		}
	}
}

// Ignored is how many results were not believed so far.
func (t *Tail) Ignored() int { return t.believer.Ignored }

// Stop ends the Tail.
func (t *Tail) Stop() { t.r.Stop() }
