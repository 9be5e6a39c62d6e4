package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
)

// handlerService builds the request service of serve: the result cache
// (whose index joins p.background), the per-request records, the hooks
// (p.hooks) and the tenants.
func (s *service) handlerService(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, topo broker.Topology, p *parts) (
	svc *handlers.Service, answers *handlers.KVAnswers, resultCache handlers.Cache, err error) {
	cfg, logger := s.cfg, s.logger
	var opts []handlers.Option
	if mp := int(nc.MaxPayload()); mp >= 64<<10 {
		opts = append(opts, handlers.WithMaxResultBytes(mp))
	}
	if topo.Cache != nil {
		kv, err := js.KeyValue(ctx, topo.Cache.Bucket)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open cache bucket %s: %w", topo.Cache.Bucket, err)
		}
		cache := handlers.NewKVCache(kv, handlers.WithCacheConn(nc),
			handlers.WithCacheLogger(logger.With(slog.String("component", "cache"))))
		resultCache = p.metrics.InstrumentCache(cache)
		opts = append(opts, handlers.WithCache(resultCache))
		p.background = append(p.background, lifecycle.Func("cache index", cache.Run))
	}
	answersKV, err := js.KeyValue(ctx, topo.Answers.Bucket)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open bucket %s: %w", topo.Answers.Bucket, err)
	}
	p.hooks, err = handlers.NewHooks(cfg.OnSuccessExec, cfg.OnFailureExec, cfg.ExecTimeout, logger)
	if err != nil {
		return nil, nil, nil, configError(fmt.Errorf("%w: ON_SUCCESS_EXEC/ON_FAILURE_EXEC: %v", config.ErrInvalid, err))
	}
	if s.clients != nil {
		p.hooks.DropEnv(s.clients.secretEnv...)
	}
	if s.tenants != nil {
		opts = append(opts, handlers.WithTenants(s.tenants, cfg.RequestSubject, s.plainTenant))
	}
	answers = handlers.NewKVAnswers(answersKV, js, cfg.ResultStream)
	if p.hooks.Enabled() {
		// A hook runs between the stored result and the acknowledgement:
		// a crash there, followed by downtime beyond the duplicate window,
		// is what the record is for.
		opts = append(opts, handlers.WithAnswers(answers))
	} else {
		opts = append(opts, handlers.WithAnswerLookups(answers))
	}
	svc, err = handlers.New(s.lookup, js, cfg.SuccessSubject, cfg.FailureSubject, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return svc, answers, resultCache, nil
}
