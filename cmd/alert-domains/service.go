package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/internal/redact"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/tracing"
)

// service is `alert-domains serve` assembled.
type service struct {
	cfg     *config.Config
	e       *env
	logger  *slog.Logger
	metrics *metrics.Metrics
	clients *tenantClients
	onReady func(natsURL string) // called once when the service is bound (the demo publishes then)
	traces  *tracing.Provider
}

// The shutdown budget after SHUTDOWN_TIMEOUT: the consumer's grace (2s),
// the HTTP server's stop and the drain; 25s + 5s fits Kubernetes' 30s.
const (
	httpStopTimeout = time.Second
	drainTimeout    = 2 * time.Second
	afterWork       = 2*time.Second + httpStopTimeout + drainTimeout
)

// run serves until ctx ends, or returns why the NATS connection closed for good.
func (s *service) run(ctx context.Context) error {
	start := time.Now()
	g := lifecycle.Group{Budget: s.cfg.ShutdownTimeout + afterWork, Logger: s.logger}
	g.Add(tracesActor(s.traces, s.cfg.ShutdownTimeout)...)
	natsURL, stopEmbedded, err := s.startEmbedded(&g)
	if err != nil {
		return err
	}
	nc, err := broker.Connect(ctx, s.cfg, natsURL, "alert-domains serve", s.logger)
	if err != nil {
		stopEmbedded()
		return s.startFailed(ctx, nil, configError(err))
	}
	conn := broker.Watch(ctx, nc, s.logger)
	g.Add(conn.Actor(drainTimeout))
	bi := buildinfo.Read()
	s.logger.Info("connected to NATS", slog.String("server", redact.URLs(nc.ConnectedUrl())), slog.String("server_name", nc.ConnectedServerName()),
		slog.String("server_version", nc.ConnectedServerVersion()), slog.String("version", bi.Version), slog.String("commit", bi.Commit), slog.String("goversion", bi.GoVersion))

	p, err := s.build(conn.Context(), nc, start)
	if err != nil {
		conn.Drain(drainTimeout)
		stopEmbedded()
		return s.startFailed(ctx, conn, err)
	}
	g.Add(p.background...)
	g.Add(s.httpActor(p.http), lifecycle.Func("presence", func(ctx context.Context) error {
		<-ctx.Done()
		p.stopPresence()
		return nil
	}))
	work := []lifecycle.Actor{
		lifecycle.Until("signal", ctx),
		lifecycle.Func("consumer", func(ctx context.Context) error {
			s.awaitAnswers(ctx, p.answers.Ready())
			err := p.consumer.Run(ctx)
			s.logger.Info("stopped taking requests")
			return err
		}),
		lifecycle.Func("safety net", p.safety.Run),
		lifecycle.Func("ready", func(ctx context.Context) error { return s.announceReady(ctx, p.ready, natsURL, start) }),
		lifecycle.Func("permission check", func(ctx context.Context) error {
			set := s.clients.router.Set()
			reportPermissions(ctx, s.logger, p.metrics, checkPermissions(ctx, set, set.Names()))
			<-ctx.Done()
			return nil
		}),
	}
	if s.clients.fromFile {
		work = append(work, s.reloadActor(p.metrics, p.reloads))
	}
	g.Add(work...)

	err = g.Run()
	if closed := conn.Err(); closed != nil {
		return closed
	}
	return err
}

// startEmbedded starts the embedded NATS server when NATS_URL is empty, as the first layer of g.
func (s *service) startEmbedded(g *lifecycle.Group) (natsURL string, stop func(), err error) {
	if s.cfg.NATSURL != "" {
		return s.cfg.NATSURL, func() {}, nil
	}
	emb, err := broker.StartEmbedded(s.cfg.EmbeddedListen, s.cfg.EmbeddedStoreDir)
	if err != nil {
		return "", nil, configError(err)
	}
	s.logger.Info("embedded NATS with JetStream listening", slog.String("url", emb.URL()), slog.String("store_dir", s.cfg.EmbeddedStoreDir))
	stop = func() {
		emb.Shutdown()
		s.logger.Info("embedded NATS stopped")
	}
	g.Add(lifecycle.Func("embedded NATS", func(ctx context.Context) error {
		<-ctx.Done()
		stop()
		return nil
	}))
	return emb.URL(), stop, nil
}

const answersWarmup = 10 * time.Second

// awaitAnswers waits at most answersWarmup for the stored results to be read.
func (s *service) awaitAnswers(ctx context.Context, ready <-chan struct{}) {
	t := time.NewTimer(answersWarmup)
	defer t.Stop()
	select {
	case <-ready:
	case <-ctx.Done():
	case <-t.C:
		s.logger.Warn("the stored results are not read yet; taking requests all the same",
			slog.Duration("waited", answersWarmup), slog.String("stream", s.cfg.ResultStream))
	}
}

// startFailed is the error of a start that did not complete; a SIGTERM during it is a normal stop.
func (s *service) startFailed(ctx context.Context, conn *broker.Lifeline, err error) error {
	if conn != nil && conn.Err() != nil {
		return conn.Err()
	}
	if ctx.Err() != nil {
		s.logger.Info("stopped during start-up", slog.Any("reason", err))
		return nil
	}
	return err
}
