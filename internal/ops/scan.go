package ops

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// maxCallsPerResult bounds the calls one result can stand for in
// RecentCalls.
const maxCallsPerResult = 1000

// RecentCalls are the calls that the results stored in cfg's result stream
// since from record, by tenant (the one a result's subject names; the
// plain subjects' is config.DefaultTenant): a time (when the result was
// stored) for each of a result's attempts. Calls of deliveries that ended
// without a result are not seen.
func RecentCalls(ctx context.Context, js jetstream.JetStream, cfg *config.Config, from time.Time) (map[string][]time.Time, error) {
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{cfg.SuccessSubject, cfg.FailureSubject, broker.TenantSubject(cfg.SuccessSubject), broker.TenantSubject(cfg.FailureSubject)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	}
	subjects := Subjects(cfg)
	starts := map[string][]time.Time{}
	err := consumer.Scan(ctx, js, cfg.ResultStream, occ, func(msg jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		var r struct {
			Attempts int `json:"attempts"`
		}
		tenant, _ := subjects.Tenant(msg.Subject())
		if tenant == "" {
			tenant = config.DefaultTenant
		}
		if json.Unmarshal(msg.Data(), &r) == nil {
			for range min(r.Attempts, maxCallsPerResult) {
				starts[tenant] = append(starts[tenant], meta.Timestamp)
			}
		}
		return true, nil
	})
	return starts, err
}

// Subjects are cfg's request and result subjects.
func Subjects(cfg *config.Config) message.Subjects {
	return message.Subjects{Request: cfg.RequestSubject, Success: cfg.SuccessSubject, Failure: cfg.FailureSubject, Plain: config.DefaultTenant}
}
