package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/safetynet"
)

// parts are the service's parts, built and ready to run.
type parts struct {
	answers    *handlers.Answers
	consumer   *consumer.Consumer
	safety     *safetynet.Listener
	background []lifecycle.Actor // the stored results' reading and the quota watchers
	ready      func() error
	endpoints  []lifecycle.Actor    // presence, and the HTTP server unless HTTP_LISTEN is empty
	reloads    func(outcome string) // counts reloads; nil without TENANTS_FILE
}

// build provisions (or verifies) the topology and builds every part, the HTTP listener last.
func (s *service) build(ctx context.Context, nc *nats.Conn, start time.Time) (*parts, error) {
	cfg, logger, m := s.cfg, s.logger, s.metrics
	err := m.WatchQuota(func(tenant string) metrics.Quota {
		if client := s.clients.client(tenant); client != nil {
			q, _ := client.Quota().(metrics.Quota)
			return q
		}
		return nil // not in the current set
	})
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	topo := broker.NewTopology(cfg)
	if cfg.Provision {
		err = topo.Provision(ctx, js, logger)
	} else {
		err = topo.Verify(ctx, js)
	}
	if err != nil {
		return nil, err
	}
	p := &parts{}
	if err := s.clients.start(ctx, js); err != nil {
		return nil, err
	}
	p.answers = handlers.NewAnswers(handlers.AnswersConfig{
		JS: js, RequestStream: cfg.RequestStream, ResultStream: cfg.ResultStream, Subjects: ops.Subjects(cfg),
		Consumer: cfg.ConsumerName, CacheTTL: cfg.CacheTTL,
		Logger: logger.With(slog.String("component", "stored_results")), Ignored: m.Ignored,
	})
	p.background = []lifecycle.Actor{lifecycle.Func("stored results", p.answers.Run), lifecycle.Func("quota watchers", s.clients.runQuotas)}
	if p.consumer, p.safety, err = s.consumers(js, nc, topo, p.answers); err != nil {
		return nil, err
	}
	p.ready = func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected to NATS (%s)", nc.Status())
		}
		return p.consumer.Ready()
	}
	if s.clients.fromFile {
		if p.reloads, err = m.TenantsReloads(); err != nil {
			return nil, err
		}
	}
	stopPresence, err := ops.ServePresence(nc, cfg, start, p.ready)
	if err != nil {
		return nil, err
	}
	p.endpoints = []lifecycle.Actor{atStop("presence", stopPresence)}
	if cfg.HTTPListen != "" {
		h, err := s.serveHTTP(p.ready, m.Handler())
		if err != nil {
			return nil, err
		}
		p.endpoints = append(p.endpoints, h)
	}
	return p, nil
}

// consumers are the request consumer and the safety net, both handling with one chain.
func (s *service) consumers(js jetstream.JetStream, nc *nats.Conn, topo broker.Topology, answers *handlers.Answers) (*consumer.Consumer, *safetynet.Listener, error) {
	cfg, logger, m := s.cfg, s.logger, s.metrics
	svc, err := handlers.New(handlers.Config{
		JS: js, Answers: answers, Tenants: s.clients.router, Subjects: ops.Subjects(cfg),
		MaxResultBytes: int(max(nc.MaxPayload(), 64<<10)), Logger: logger,
		TracerProvider: s.traces.TracerProvider(), Propagator: s.traces.Propagator(),
	})
	if err != nil {
		return nil, nil, err
	}
	hooks, err := handlers.NewHooks(cfg.OnSuccessExec, cfg.OnFailureExec, cfg.ExecTimeout, os.Environ(), cfg.HookVariables, logger)
	if err != nil {
		return nil, nil, configError(fmt.Errorf("%w: ON_SUCCESS_EXEC/ON_FAILURE_EXEC: %v", config.ErrInvalid, err))
	}
	traced := handlers.Tracing(s.traces.TracerProvider(), s.traces.Propagator(), ops.Subjects(cfg), cfg.ConsumerName)
	chain := consumer.Chain(svc.Handle, m.Middleware(), traced, handlers.Logging(logger), hooks.Middleware())
	binder := broker.NewBinder(js, cfg.RequestStream, topo.Consumer, cfg.Provision, answers, logger)
	c, err := consumer.New(binder.Bind, chain, consumer.Config{
		Concurrency: cfg.Concurrency, AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger,
		InfoEvery: 5 * time.Second, OnInfo: func(info *jetstream.ConsumerInfo) {
			binder.Observe(info)
			m.ConsumerInfo(info)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	safety, err := safetynet.New(safetynet.Config{
		JS: js, RequestStream: cfg.RequestStream, Consumer: cfg.ConsumerName, Handler: chain,
		Logger:   logger.With(slog.String("component", "safety_net")),
		Answered: m.SafetyNetAnswered,
		Bind:     broker.NewBinder(js, cfg.RequestStream, topo.Advisories, cfg.Provision, nil, logger).Bind,
		AckWait:  topo.Advisories.AckWait, ShutdownTimeout: cfg.ShutdownTimeout,
	})
	return c, safety, err
}
