package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/internal/redact"
	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/tracing"
)

const serveUsage = `serve

Runs the service: pulls alert IDs from REQUEST_SUBJECT, asks Microsoft for their
domains and publishes one result per request. Configured by the environment.`

func runServe(ctx context.Context, e *env, args []string) error {
	if err := parse(e.flags("serve"), args, true); err != nil {
		return err
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	list, fromFile, err := loadTenants(cfg, e)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, e)
	for _, w := range cfg.Warnings {
		logger.Warn("configuration: "+w.Variable+" "+w.Message, slog.String("variable", w.Variable))
	}
	svc, err := newService(cfg, e, list, fromFile, logger)
	if err != nil {
		return err
	}
	return svc.run(ctx)
}

// newService assembles serve for the tenants of list.
func newService(cfg *config.Config, e *env, list []config.Tenant, fromFile bool, logger *slog.Logger) (*service, error) {
	warnRetirement(logger, list)
	traces, err := newTracing(e, logger)
	if err != nil {
		return nil, err
	}
	logger = traces.Logger(logger)
	m := metrics.New()
	m.SetTenants(tenantAPIs(list))
	opts := []connector.Option{connector.WithTracerProvider(traces.TracerProvider())}
	if e.hc == nil {
		opts = append(opts, connector.WithHTTPClient(connector.NewHTTPClient(cfg.Concurrency)))
	}
	clients, err := newTenantClients(cfg, e, list, fromFile, logger, m, opts)
	if err != nil {
		return nil, err
	}
	clients.noteTenants(list)
	return &service{cfg: cfg, logger: logger, metrics: m, clients: clients, traces: traces}, nil
}

// tenantAPIs are the names of list with the API of each, the values of the metrics' tenant and api labels.
func tenantAPIs(list []config.Tenant) map[string]connector.API {
	apis := make(map[string]connector.API, len(list))
	for _, t := range list {
		apis[t.Name] = t.API
	}
	return apis
}

// service is `alert-domains serve` assembled.
type service struct {
	cfg     *config.Config
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
	if s.traces.Enabled() { // exports the spans left at the stop: the first layer stops last
		g.Add(lifecycle.Func("traces", func(ctx context.Context) error {
			<-ctx.Done()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
			defer cancel()
			return s.traces.Shutdown(fctx)
		}))
	}
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
	g.Add(p.endpoints...)
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
			reportPermissions(ctx, s.logger, s.metrics, checkPermissions(ctx, set, set.Names()))
			<-ctx.Done()
			return nil
		}),
	}
	if s.clients.fromFile {
		work = append(work, s.reloadActor(p.reloads))
	}
	g.Add(work...)

	err = g.Run()
	return cmp.Or(conn.Err(), err) // why the connection closed for good comes first
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
	g.Add(atStop("embedded NATS", stop))
	return emb.URL(), stop, nil
}

const answersWarmup = 10 * time.Second

// awaitAnswers waits at most answersWarmup for the stored results to be read.
func (s *service) awaitAnswers(ctx context.Context, ready <-chan struct{}) {
	select {
	case <-ready:
	case <-ctx.Done():
	case <-time.After(answersWarmup):
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

// newTracing sets up the process's traces as the OTEL_* variables say.
func newTracing(e *env, logger *slog.Logger) (*tracing.Provider, error) {
	p, err := tracing.New(context.Background(), e.lookupEnv, e.stderr, logger.With(slog.String("component", "tracing")))
	if err != nil {
		return nil, configError(err)
	}
	return p, nil
}

// serveHTTP listens on HTTP_LISTEN and is the Actor that serves /livez, /readyz and /metrics there until
// interrupted; a server that stops on its own is logged and does not stop the service.
func (s *service) serveHTTP(ready func() error, metrics http.Handler) (lifecycle.Actor, error) {
	ln, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		return lifecycle.Actor{}, fmt.Errorf("HTTP_LISTEN %s: %w", s.cfg.HTTPListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return lifecycle.Func("HTTP server", func(ctx context.Context) error {
		s.logger.Info("HTTP endpoints listening", slog.String("addr", ln.Addr().String()))
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("HTTP server stopped", slog.Any("error", err))
			}
		}()
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.Background(), httpStopTimeout)
		defer cancel()
		if err := srv.Shutdown(stop); err != nil {
			s.logger.Warn("HTTP server did not stop cleanly", slog.Any("error", err))
		}
		<-served
		return nil
	}), nil
}

// atStop is the Actor that calls stop once interrupted.
func atStop(name string, stop func()) lifecycle.Actor {
	return lifecycle.Func(name, func(ctx context.Context) error {
		<-ctx.Done()
		stop()
		return nil
	})
}

// announceReady logs (and tells onReady) when the service first becomes ready.
func (s *service) announceReady(ctx context.Context, ready func() error, natsURL string, start time.Time) error {
	for ready() != nil {
		if !timing.Sleep(ctx, 5*time.Millisecond, nil) {
			return nil
		}
	}
	s.logger.Info("ready", slog.String("request_subject", s.cfg.RequestSubject), slog.Duration("startup", time.Since(start)))
	if s.onReady != nil {
		s.onReady(natsURL)
	}
	<-ctx.Done()
	return nil
}
