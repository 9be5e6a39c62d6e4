package ops

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
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

// Tail follows the results of a stream as they are stored.
type Tail struct {
	it     jetstream.MessagesContext
	filter TailFilter
}

// OpenTail starts following the results of stream that occ selects (its
// FilterSubjects from filter.Subjects) and filter keeps. The errors are
// the server's as they are, jetstream.ErrStreamNotFound among them.
func OpenTail(ctx context.Context, js jetstream.JetStream, stream string, occ jetstream.OrderedConsumerConfig, filter TailFilter) (*Tail, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	cons, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	return &Tail{it: it, filter: filter}, nil
}

// Next waits for the next result the filter keeps.
func (t *Tail) Next(ctx context.Context) (jetstream.Msg, error) {
	for {
		msg, err := t.it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		if t.filter.Keeps(msg.Subject(), msg.Data()) {
			return msg, nil
		}
	}
}

// Stop ends the Tail.
func (t *Tail) Stop() { t.it.Stop() }
