package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/handlers"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/internal/redact"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/safetynet"
	"github.com/alert-domains/alert-domains/tenants"
)

// service is `alert-domains serve` assembled: NATS (embedded or external),
// the topology, the handler chain, the consumer and the HTTP endpoints.
type service struct {
	cfg     *config.Config
	logger  *slog.Logger
	lookup  handlers.Lookup
	limiter *connector.Limiter
	// shared is the quota every replica shares (QUOTA_SCOPE=shared); nil
	// when the process counts alone with limiter.
	shared *quota.Shared
	// metrics are served on /metrics; the connector built before run
	// reports its calls to them (connector.WithObserver). Nil: run makes
	// its own.
	metrics *metrics.Metrics
	// tenants are the tenants served: each request is looked up with its
	// tenant's client (lookup is then not used); plainTenant is the one
	// whose cache keys are the alert IDs alone (the tenant of the AZURE_*
	// variables). Nil: every request is looked up with lookup.
	tenants     *tenants.Router
	plainTenant string
	// clients are the clients of the tenants of TENANTS_FILE, reloaded on
	// SIGHUP; nil without the file.
	clients *tenantClients
	// onReady, when set, is called once with the NATS URL when the service
	// is bound to its consumer (the demo publishes then).
	onReady func(natsURL string)
}

// run starts everything, serves until ctx ends, then shuts down in order:
// stop taking work, finish or hand back in-flight work, stop HTTP, drain
// the connection, stop the embedded server last.
func (s *service) run(ctx context.Context) (err error) {
	cfg, logger := s.cfg, s.logger
	start := time.Now()
	// SIGTERM before the service was ready (connecting, provisioning) is a
	// normal stop, not a failure.
	stopped := ctx
	ready := false
	defer func() {
		if err != nil && !ready && stopped.Err() != nil && !errors.Is(err, errConnectionClosed) {
			logger.Info("stopped during start-up", slog.Any("reason", err))
			err = nil
		}
	}()
	natsURL := cfg.NATSURL
	if natsURL == "" {
		emb, err := broker.StartEmbedded(cfg.EmbeddedListen, cfg.EmbeddedStoreDir)
		if err != nil {
			return configError(err)
		}
		defer func() {
			emb.Shutdown()
			logger.Info("embedded NATS stopped")
		}()
		natsURL = emb.URL()
		logger.Info("embedded NATS with JetStream listening", slog.String("url", natsURL), slog.String("store_dir", cfg.EmbeddedStoreDir))
	}
	nc, err := broker.Connect(ctx, cfg, natsURL, "alert-domains serve", logger)
	if err != nil {
		return configError(err)
	}
	defer drain(nc, logger)
	// A connection nats.go closes for good (the server refused the
	// credentials twice in a row, or closed it) ends the service with the
	// reason, so that its supervisor restarts it: it never stays up doing
	// nothing.
	ctx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	go func() {
		select {
		case <-closed:
			stopRun(connectionClosedError(nc))
		case <-ctx.Done():
		}
	}()
	defer func() {
		if cause := context.Cause(ctx); errors.Is(cause, errConnectionClosed) {
			err = cause
		}
	}()
	bi := buildinfo.Read()
	logger.Info("connected to NATS",
		slog.String("server", redact.URLs(nc.ConnectedUrl())),
		slog.String("server_name", nc.ConnectedServerName()),
		slog.String("server_version", nc.ConnectedServerVersion()),
		slog.String("version", bi.Version),
		slog.String("commit", bi.Commit),
		slog.String("goversion", bi.GoVersion))
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	topo := broker.NewTopology(cfg)
	if cfg.Provision {
		err = topo.Provision(ctx, js, logger)
	} else {
		err = topo.Verify(ctx, js)
	}
	if err != nil {
		return err
	}

	m := s.metrics
	if m == nil {
		m = metrics.New()
	}
	stopQuota, err := s.startQuota(ctx, js, m)
	if err != nil {
		return err
	}
	defer stopQuota()
	var opts []handlers.Option
	var resultCache handlers.Cache
	if mp := int(nc.MaxPayload()); mp >= 64<<10 {
		opts = append(opts, handlers.WithMaxResultBytes(mp))
	}
	if topo.Cache != nil {
		kv, err := js.KeyValue(ctx, topo.Cache.Bucket)
		if err != nil {
			return fmt.Errorf("open cache bucket %s: %w", topo.Cache.Bucket, err)
		}
		cache := handlers.NewKVCache(kv, handlers.WithCacheConn(nc),
			handlers.WithCacheLogger(logger.With(slog.String("component", "cache"))))
		resultCache = m.InstrumentCache(cache)
		opts = append(opts, handlers.WithCache(resultCache))
		// The cache's index runs until the consumer has finished its
		// in-flight work (the deferred stop runs after cons.Run returned),
		// and stops before the connection drains.
		cacheCtx, stopCache := context.WithCancel(context.WithoutCancel(ctx))
		cacheDone := make(chan struct{})
		go func() {
			defer close(cacheDone)
			_ = cache.Run(cacheCtx)
		}()
		defer func() {
			stopCache()
			<-cacheDone
		}()
	}
	answersKV, err := js.KeyValue(ctx, topo.Answers.Bucket)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", topo.Answers.Bucket, err)
	}
	hooks, err := handlers.NewHooks(cfg.OnSuccessExec, cfg.OnFailureExec, cfg.ExecTimeout, logger)
	if err != nil {
		return configError(fmt.Errorf("%w: ON_SUCCESS_EXEC/ON_FAILURE_EXEC: %v", config.ErrInvalid, err))
	}
	if s.clients != nil {
		hooks.DropEnv(s.clients.secretEnv...)
	}
	if s.tenants != nil {
		opts = append(opts, handlers.WithTenants(s.tenants, cfg.RequestSubject, s.plainTenant))
	}
	answers := handlers.NewKVAnswers(answersKV, js, cfg.ResultStream)
	if hooks.Enabled() {
		// A hook runs between the stored result and the acknowledgement:
		// a crash there, followed by downtime beyond the duplicate window,
		// is what the record is for.
		opts = append(opts, handlers.WithAnswers(answers))
	} else {
		opts = append(opts, handlers.WithAnswerLookups(answers))
	}
	svc, err := handlers.New(s.lookup, js, cfg.SuccessSubject, cfg.FailureSubject, opts...)
	if err != nil {
		return err
	}
	handler := consumer.Chain(svc.Handle, m.Middleware(), handlers.Logging(logger), hooks.Middleware())

	binder := broker.NewBinder(js, topo, cfg.Provision, logger)
	cons, err := consumer.New(binder.Bind, handler,
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
		return err
	}
	safetyOpts := []safetynet.Option{
		safetynet.WithLogger(logger.With(slog.String("component", "safety_net"))),
		safetynet.WithProvision(cfg.Provision),
		safetynet.WithObserver(m),
		safetynet.WithShutdownTimeout(cfg.ShutdownTimeout),
		safetynet.WithAnswers(answers),
		safetynet.WithRouting(svc.Routing),
	}
	if resultCache != nil {
		safetyOpts = append(safetyOpts, safetynet.WithCache(resultCache, cfg.SuccessSubject))
	}
	safety, err := safetynet.New(js, topo, cfg.FailureSubject, safetyOpts...)
	if err != nil {
		return err
	}

	ready = true // from here on, stopping is the ordinary shutdown
	readiness := func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected to NATS (%s)", nc.Status())
		}
		return cons.Ready()
	}
	stopHTTP, err := s.serveHTTP(readiness, m.Handler())
	if err != nil {
		return err
	}
	defer stopHTTP()
	stopPresence, err := servePresence(nc, cfg, start, readiness)
	if err != nil {
		return err
	}
	defer stopPresence()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if s.clients != nil {
		stopReload, err := s.reloadOnHangup(watchCtx, hooks, m)
		if err != nil {
			return err
		}
		defer stopReload()
	}
	go s.announceReady(watchCtx, readiness, natsURL, start)

	// The safety net runs beside the consumer, and stops with it.
	netCtx, stopNet := context.WithCancel(ctx)
	defer stopNet()
	netDone := make(chan struct{})
	go func() {
		defer close(netDone)
		if err := safety.Run(netCtx); err != nil {
			logger.Error("safety net stopped", slog.Any("error", err))
		}
	}()

	err = cons.Run(ctx)
	logger.Info("stopped taking requests")
	stopNet()
	<-netDone
	return err
}

// errConnectionClosed is the error of a service whose NATS connection was
// closed for good.
var errConnectionClosed = errors.New("the NATS connection was closed")

func connectionClosedError(nc *nats.Conn) error {
	if last := nc.LastError(); last != nil {
		return fmt.Errorf("%w: %w", errConnectionClosed, last)
	}
	return errConnectionClosed
}

// startQuota provisions and runs the shared quota, or seeds the process's
// own limiter from the recent results, and exports its use. stop ends the
// shared quota's watch, after the consumer has finished.
func (s *service) startQuota(ctx context.Context, js jetstream.JetStream, m *metrics.Metrics) (stop func(), err error) {
	if s.tenants != nil {
		if err := m.WatchQuota(tenantQuota(s.tenants)); err != nil {
			return nil, err
		}
	}
	switch {
	case s.clients != nil:
		return s.clients.start(ctx, js)
	case s.shared != nil:
		if err := prepareQuota(ctx, js, s.cfg); err != nil {
			return nil, err
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.shared.Run(runCtx, js)
		}()
		s.logger.Info("shared Defender quota", slog.String("registration_key", s.shared.Registration().Key()),
			slog.String("limits", s.cfg.DefenderRateLimits), slog.Int("stream_replicas", s.cfg.StreamReplicas))
		return func() {
			cancel()
			<-done
		}, nil
	case s.limiter != nil:
		n, err := seedLimiter(ctx, js, s.cfg, s.limiter)
		if err != nil {
			// The quota then counts from now: say so, and go on.
			s.logger.Warn("Defender quota counts from now: recent calls unknown", slog.Any("error", err))
		} else {
			s.logger.Info("Defender quota of this process", slog.String("limits", s.cfg.DefenderRateLimits), slog.Int("recent_calls", n))
		}
	}
	return func() {}, nil
}

// tenantQuota is, for the metrics, the quota the Defender client of each
// tenant of the current set spends (a tenant's own limiter, or the shared
// quota of its app registration), nil for a tenant that is not in the set.
func tenantQuota(r *tenants.Router) func(tenant string) metrics.Quota {
	return func(tenant string) metrics.Quota {
		l, ok := r.Set().Lookup(tenant)
		if !ok {
			return nil
		}
		c, ok := l.(*connector.Client)
		if !ok {
			return nil
		}
		q, _ := c.Quota().(metrics.Quota)
		return q
	}
}

// tenantsFileCheck is how often the tenants file is read for a change (a
// mounted Kubernetes Secret or ConfigMap is updated in place).
const tenantsFileCheck = 5 * time.Second

// reloadOnHangup reloads TENANTS_FILE on every SIGHUP, and when its content
// changes, until ctx ends. A file that cannot be used is logged and
// counted, and the running tenants stay.
func (s *service) reloadOnHangup(ctx context.Context, hooks *handlers.Hooks, m *metrics.Metrics) (stop func(), err error) {
	count, err := m.TenantsReloads()
	if err != nil {
		return nil, err
	}
	sum := func() ([sha256.Size]byte, bool) {
		data, err := os.ReadFile(s.cfg.TenantsFile)
		return sha256.Sum256(data), err == nil
	}
	last, _ := sum()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	tick := time.NewTicker(tenantsFileCheck)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			reason := "SIGHUP"
			select {
			case <-ctx.Done():
				return
			case <-hup:
			case <-tick.C:
				// A file that cannot be read now (being replaced) is read
				// again at the next check.
				if now, ok := sum(); !ok || now == last {
					continue
				}
				reason = "file changed"
			}
			if now, ok := sum(); ok {
				last = now
			}
			names, err := s.clients.reload(ctx)
			if err != nil {
				count(metrics.ReloadRefused)
				s.logger.Error("tenants file not reloaded: the running tenants stay", slog.String("file", s.cfg.TenantsFile),
					slog.String("reason", reason), slog.Any("error", err))
				continue
			}
			hooks.DropEnv(s.clients.secretEnv...)
			m.SetTenants(names)
			count(metrics.ReloadApplied)
			s.logger.Info("tenants reloaded", slog.String("file", s.cfg.TenantsFile), slog.String("reason", reason), slog.Any("tenants", names))
		}
	}()
	return func() {
		signal.Stop(hup)
		tick.Stop()
		<-done
	}, nil
}

// announceReady logs (and tells onReady) when the service first becomes ready.
func (s *service) announceReady(ctx context.Context, ready func() error, natsURL string, start time.Time) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	s.logger.Info("ready", slog.String("request_subject", s.cfg.RequestSubject), slog.Duration("startup", time.Since(start)))
	if s.onReady != nil {
		s.onReady(natsURL)
	}
}

// serveHTTP serves /livez, /readyz and /metrics on HTTP_LISTEN.
func (s *service) serveHTTP(ready func() error, metrics http.Handler) (stop func(), err error) {
	if s.cfg.HTTPListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("HTTP_LISTEN %s: %w", s.cfg.HTTPListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("HTTP server stopped", slog.Any("error", err))
		}
	}()
	s.logger.Info("HTTP endpoints listening", slog.String("addr", ln.Addr().String()))
	return func() {
		// Part of the shutdown budget: probes and scrapes are short.
		ctx, cancel := context.WithTimeout(context.Background(), httpStopTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			s.logger.Warn("HTTP server did not stop cleanly", slog.Any("error", err))
		}
	}, nil
}

// defenderHTTPClient is the HTTP client for Defender calls of serve: the
// connector's own keeps 64 idle connections per host, so with a larger
// CONCURRENCY every answer beyond the 64th closed its connection and a later
// call paid a new TLS handshake (at CONCURRENCY=256, about four times the
// processor time per request). This one keeps a connection per worker.
func defenderHTTPClient(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(concurrency, 64)
	t.MaxIdleConns = max(2*concurrency, 256)
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

// The parts of the shutdown after in-flight work (at most SHUTDOWN_TIMEOUT
// plus the consumer's grace of 2s): with the default SHUTDOWN_TIMEOUT of
// 25s the whole shutdown fits in Kubernetes' 30s grace period.
const (
	httpStopTimeout = time.Second
	drainTimeout    = 2 * time.Second
)

// drain flushes and closes the connection, waiting until it is closed.
func drain(nc *nats.Conn, logger *slog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(drainTimeout):
		logger.Warn("NATS drain timed out, closing")
		nc.Close()
	}
}
