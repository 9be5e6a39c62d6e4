package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/tenants"
)

// registration is the app registration of the configuration, whose calls
// share one quota.
func registration(cfg *config.Config) quota.Registration {
	return quota.Registration{Cloud: cfg.DefenderCloud, TenantID: cfg.AzureTenantID, ClientID: cfg.AzureClientID}
}

// newSharedQuota returns the shared quota of the configuration, or nil when
// it counts per process (QUOTA_SCOPE=process) or has no limits.
func newSharedQuota(cfg *config.Config, logger *slog.Logger, obs quota.Observer) (*quota.Shared, error) {
	if cfg.QuotaScope != quota.ScopeShared || len(cfg.RateLimits) == 0 {
		return nil, nil
	}
	opts := []quota.SharedOption{quota.WithLogger(logger.With(slog.String("component", "quota"))), quota.WithHold(cfg.DefenderTimeout)}
	if obs != nil {
		opts = append(opts, quota.WithObserver(obs))
	}
	return quota.NewShared(quota.NewLayout(cfg.ConsumerName, cfg.RateLimits), registration(cfg), cfg.RateLimits, opts...)
}

// newTenantQuota is the shared quota of one tenant's app registration, in
// the streams of layout (sharedQuota), or nil when it counts per process or
// has no limits.
func newTenantQuota(cfg *config.Config, layout quota.Layout, t *config.Tenant, logger *slog.Logger, obs quota.Observer) (*quota.Shared, error) {
	if cfg.QuotaScope != quota.ScopeShared || len(t.RateLimits) == 0 {
		return nil, nil
	}
	opts := []quota.SharedOption{quota.WithLogger(logger.With(slog.String("component", "quota"), slog.String("tenant", t.Name))), quota.WithHold(cfg.DefenderTimeout)}
	if obs != nil {
		opts = append(opts, quota.WithObserver(obs))
	}
	return quota.NewShared(layout, tenantRegistration(t), t.RateLimits, opts...)
}

// prepareQuota provisions (or, with PROVISION=false, verifies) the shared
// quota's streams and bucket.
func prepareQuota(ctx context.Context, js jetstream.JetStream, cfg *config.Config, logger *slog.Logger) error {
	return prepareQuotaLimits(ctx, js, cfg, quota.NewLayout(cfg.ConsumerName, cfg.RateLimits), cfg.RateLimits, logger)
}

// prepareQuotaLimits is prepareQuota for the streams of the tenants served
// (sharedQuota): layout names them, limits are every tenant's. Provisioning
// waits out a busy cluster as the topology's does (broker.Retrying):
// replicas started together on a fresh cluster time out while it places
// every stream.
func prepareQuotaLimits(ctx context.Context, js jetstream.JetStream, cfg *config.Config, layout quota.Layout, limits []connector.Limit, logger *slog.Logger) error {
	if cfg.Provision {
		return broker.Retrying(ctx, logger, func() error {
			return quota.Provision(ctx, js, layout, limits, cfg.StreamReplicas, cfg.DefenderTimeout)
		})
	}
	return quota.Verify(ctx, js, layout, limits)
}

// seedTimeout bounds the read of recent results at start.
const seedTimeout = 10 * time.Second

// seedLimiter logs in l the calls recorded by the results of the longest
// quota window (ops.RecentCalls), so that a process counting alone does not
// start with a blank window after a restart.
func seedLimiter(ctx context.Context, js jetstream.JetStream, cfg *config.Config, l *connector.Limiter) (int, error) {
	span := time.Duration(0)
	for _, lim := range l.Limits() {
		span = max(span, min(lim.Window, broker.ResultMaxAge))
	}
	if span == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, seedTimeout)
	defer cancel()
	starts, err := ops.RecentCalls(ctx, js, cfg, time.Now().Add(-span))
	if err != nil {
		return 0, fmt.Errorf("read recent results for the quota: %w", err)
	}
	l.Seed(starts)
	return len(starts), nil
}

// joinSharedQuota connects `get` to the shared quota when NATS_URL is set
// and reachable; otherwise (or with QUOTA_SCOPE=process) get counts alone,
// and says why on w. stop ends the membership.
func joinSharedQuota(ctx context.Context, cfg *config.Config, t *config.Tenant, layout quota.Layout, all []connector.Limit, logger *slog.Logger, w io.Writer) (opts []connector.Option, stop func()) {
	stop = func() {}
	if cfg.NATSURL == "" || cfg.QuotaScope != quota.ScopeShared || len(t.RateLimits) == 0 {
		return nil, stop
	}
	alone := func(err error) ([]connector.Option, func()) {
		fmt.Fprintf(w, "alert-domains: get: counting the Defender quota alone: %v\n", err)
		return nil, stop
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := broker.Connect(cctx, cfg, cfg.NATSURL, "alert-domains get", logger)
	if err != nil {
		return alone(err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		err = prepareQuotaLimits(cctx, js, cfg, layout, all, logger)
	}
	var shared *quota.Shared
	if err == nil {
		shared, err = newTenantQuota(cfg, layout, t, logger, nil)
	}
	if err != nil {
		nc.Close()
		return alone(err)
	}
	rctx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = shared.Run(rctx, js)
	}()
	return []connector.Option{connector.WithQuota(shared)}, func() {
		stopRun()
		<-done
		nc.Close()
	}
}

// newServeQuota is the shared quota of serve, counted in m.
func newServeQuota(cfg *config.Config, logger *slog.Logger, m *metrics.Metrics) (*quota.Shared, error) {
	if cfg.QuotaScope != quota.ScopeShared || len(cfg.RateLimits) == 0 {
		return nil, nil
	}
	obs, err := m.SharedQuota()
	if err != nil {
		return nil, err
	}
	return newSharedQuota(cfg, logger, obs)
}

// quotaActors provisions the shared quota and returns its watchers, or
// seeds the process's own limiter from the recent results; it exports
// the quota's use.
func (s *service) quotaActors(ctx context.Context, js jetstream.JetStream, m *metrics.Metrics) ([]lifecycle.Actor, error) {
	if s.tenants != nil {
		if err := m.WatchQuota(tenantQuota(s.tenants)); err != nil {
			return nil, err
		}
	}
	switch {
	case s.clients != nil:
		if err := s.clients.start(ctx, js); err != nil {
			return nil, err
		}
		return []lifecycle.Actor{lifecycle.Func("quota watchers", s.clients.runQuotas)}, nil
	case s.shared != nil:
		if err := prepareQuota(ctx, js, s.cfg, s.logger); err != nil {
			return nil, err
		}
		s.logger.Info("shared Defender quota", slog.String("registration_key", s.shared.Registration().Key()),
			slog.String("limits", s.cfg.DefenderRateLimits), slog.Int("stream_replicas", s.cfg.StreamReplicas))
		return []lifecycle.Actor{lifecycle.Func("quota watcher", func(ctx context.Context) error { return s.shared.Run(ctx, js) })}, nil
	case s.limiter != nil:
		n, err := seedLimiter(ctx, js, s.cfg, s.limiter)
		if err != nil {
			// The quota then counts from now: say so, and go on.
			s.logger.Warn("Defender quota counts from now: recent calls unknown", slog.Any("error", err))
		} else {
			s.logger.Info("Defender quota of this process", slog.String("limits", s.cfg.DefenderRateLimits), slog.Int("recent_calls", n))
		}
	}
	return nil, nil
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
