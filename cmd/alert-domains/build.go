package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/internal/redact"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/safetynet"
)

// parts are the service's parts, built and ready to run.
type parts struct {
	metrics      *metrics.Metrics
	hooks        *handlers.Hooks
	consumer     *consumer.Consumer
	safety       *safetynet.Listener
	background   []lifecycle.Actor // the quota watchers and the cache index
	ready        func() error
	http         *httpServer // nil: HTTP_LISTEN is empty
	stopPresence func()
	reloads      func(outcome string) // counts reloads; nil without TENANTS_FILE
	// sharedCalls is told whether other replicas run (presence); nil: calls
	// are not shared with other replicas (COALESCE_SCOPE=process).
	sharedCalls func(others bool)
	// cacheReady is closed once the result cache has read the results
	// stored before the start; nil with CACHE_TTL=0.
	cacheReady <-chan struct{}
	// earlier finds results stored before a redelivery or an advisory
	// (handlers.EarlierResults), for the handler and the safety net.
	earlier *handlers.EarlierResults
}

// build provisions (or verifies) the topology and builds every part. It
// opens the HTTP listener last, so that nothing is left open when it
// fails.
func (s *service) build(ctx context.Context, nc *nats.Conn, start time.Time) (*parts, error) {
	cfg, logger := s.cfg, s.logger
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
	p := &parts{metrics: s.metrics}
	if p.metrics == nil {
		p.metrics = metrics.New()
	}
	m := p.metrics
	if p.background, err = s.quotaActors(ctx, js, m); err != nil {
		return nil, err
	}
	svc, answers, resultCache, err := s.handlerService(ctx, nc, js, topo, p)
	if err != nil {
		return nil, err
	}
	handler := consumer.Chain(svc.Handle, m.Middleware(), handlers.Logging(logger), p.hooks.Middleware())

	binder := broker.NewBinder(js, topo, cfg.Provision, logger)
	p.consumer, err = consumer.New(binder.Bind, handler,
		consumer.WithConcurrency(cfg.Concurrency),
		consumer.WithAckWait(cfg.AckWait),
		consumer.WithMaxDeliver(cfg.MaxDeliver),
		consumer.WithShutdownTimeout(cfg.ShutdownTimeout),
		consumer.WithLogger(logger),
		consumer.WithInfoHandler(5*time.Second, func(info *jetstream.ConsumerInfo) {
			binder.Observe(info)
			m.ConsumerInfo(info)
		}),
	)
	if err != nil {
		return nil, err
	}
	safetyOpts := []safetynet.Option{
		safetynet.WithLogger(logger.With(slog.String("component", "safety_net"))),
		safetynet.WithProvision(cfg.Provision),
		safetynet.WithObserver(m),
		safetynet.WithShutdownTimeout(cfg.ShutdownTimeout),
		safetynet.WithAnswers(answers),
		safetynet.WithEarlierResults(p.earlier),
		safetynet.WithRouting(svc.Routing),
	}
	if resultCache != nil {
		safetyOpts = append(safetyOpts, safetynet.WithCache(resultCache, cfg.SuccessSubject))
	}
	if p.hooks.Enabled() {
		// A request out of deliveries may have had its hook cut by a crash,
		// and a result the safety net stores has had none: hooks run at
		// least once for those too.
		safetyOpts = append(safetyOpts, safetynet.WithHooks(p.hooks.Run))
	}
	if p.safety, err = safetynet.New(js, topo, cfg.FailureSubject, safetyOpts...); err != nil {
		return nil, err
	}

	p.ready = func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected to NATS (%s)", nc.Status())
		}
		return p.consumer.Ready()
	}
	if s.clients != nil {
		if p.reloads, err = m.TenantsReloads(); err != nil {
			return nil, err
		}
	}
	if p.stopPresence, err = servePresence(nc, cfg, start, p.ready, p.sharedCalls); err != nil {
		return nil, err
	}
	if p.http, err = s.listenHTTP(p.ready, m.Handler()); err != nil {
		return nil, err
	}
	return p, nil
}

// handlerService builds the request service of serve: the result cache
// (whose index joins p.background), the per-request records and the
// search for results stored before a redelivery (also in p.background),
// the hooks (p.hooks) and the tenants.
func (s *service) handlerService(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, topo broker.Topology, p *parts) (
	svc *handlers.Service, answers *handlers.KVAnswers, resultCache handlers.Cache, err error) {
	cfg, logger := s.cfg, s.logger
	var opts []handlers.Option
	if mp := int(nc.MaxPayload()); mp >= 64<<10 {
		opts = append(opts, handlers.WithMaxResultBytes(mp))
	}
	if topo.CacheTTL > 0 {
		cache := handlers.NewResultCache(js, topo.ResultStream.Name, cfg.SuccessSubject, topo.CacheTTL,
			handlers.WithCachePlainTenant(s.plainTenant),
			handlers.WithCacheLogger(logger.With(slog.String("component", "cache"))))
		resultCache = p.metrics.InstrumentCache(cache)
		opts = append(opts, handlers.WithCache(resultCache))
		p.background = append(p.background, lifecycle.Func("cache index", cache.Run))
		p.cacheReady = cache.Ready()
	}
	if topo.Flights != nil {
		opt, share, err := s.sharedFlights(ctx, nc, js, topo)
		if err != nil {
			return nil, nil, nil, err
		}
		opts, p.sharedCalls = append(opts, opt), share
	}
	// A busy cluster may leave this lookup unanswered as it may a step of
	// provisioning: it is tried again the same way.
	var answersKV jetstream.KeyValue
	if err := broker.Retrying(ctx, logger, func() (err error) {
		answersKV, err = js.KeyValue(ctx, topo.Answers.Bucket)
		return err
	}); err != nil {
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
	// Without hooks no record is written; with them a crash between the
	// result and its record leaves none. Either way a request redelivered
	// after the duplicate window looks for its result in the result stream.
	earlier := handlers.NewEarlierResults(js, cfg.ResultStream,
		[]string{cfg.SuccessSubject, cfg.FailureSubject, broker.TenantSubject(cfg.SuccessSubject), broker.TenantSubject(cfg.FailureSubject)},
		handlers.WithEarlierLogger(logger.With(slog.String("component", "earlier_results"))))
	opts = append(opts, handlers.WithEarlierResults(earlier))
	p.earlier = earlier
	p.background = append(p.background, lifecycle.Func("earlier results", earlier.Run))
	svc, err = handlers.New(s.lookup, js, cfg.SuccessSubject, cfg.FailureSubject, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return svc, answers, resultCache, nil
}

// sharedFlights shares Defender calls with the other replicas through the
// claims stream (COALESCE_SCOPE=shared): the handler option, and the
// function presence tells whether other replicas run.
func (s *service) sharedFlights(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, topo broker.Topology) (handlers.Option, func(others bool), error) {
	cfg := s.cfg
	flightsLog := s.logger.With(slog.String("component", "shared_calls"))
	if err := broker.Retrying(ctx, flightsLog, func() error { return topo.ProvisionFlights(ctx, js, cfg.Provision) }); err != nil {
		// A claim is a hint: without the stream each replica calls
		// alone, as with COALESCE_SCOPE=process, until it is there.
		flightsLog.Warn("the claims stream cannot be used: calls are not shared with other replicas while it cannot", slog.Any("error", err))
	}
	flights, err := handlers.NewSharedFlights(js, nc, topo.Flights.Name, broker.FlightClaimSubjects(cfg),
		broker.FlightAnswerSubjects(cfg), broker.FlightHold(cfg), handlers.WithFlightsLogger(flightsLog))
	if err != nil {
		return nil, nil, err
	}
	// Alone, a claim would cost two writes per call and save none: calls
	// are shared from when presence hears of another replica.
	flights.Share(false)
	share := func(others bool) {
		flights.Share(others)
		if others {
			flightsLog.Info("other replicas run: a Defender call for an alert is shared with them")
		} else {
			flightsLog.Info("no other replica heard of: Defender calls are shared within this process only")
		}
	}
	return handlers.WithSharedFlights(flights), share, nil
}

func (s *service) logConnected(nc *nats.Conn) {
	bi := buildinfo.Read()
	s.logger.Info("connected to NATS",
		slog.String("server", redact.URLs(nc.ConnectedUrl())),
		slog.String("server_name", nc.ConnectedServerName()),
		slog.String("server_version", nc.ConnectedServerVersion()),
		slog.String("version", bi.Version),
		slog.String("commit", bi.Commit),
		slog.String("goversion", bi.GoVersion))
}
