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
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/tenants"
)

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

// prepareQuotaLimits provisions (or, with PROVISION=false, verifies) the
// shared quota's streams and bucket: layout names them, limits are every
// tenant's. Provisioning waits out a busy cluster as the topology's does:
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

// joinSharedQuota connects `get` to the shared quota when NATS_URL is set
// and reachable; otherwise (or with QUOTA_SCOPE=process) get counts alone,
// and says why on w. stop ends the membership.
func joinSharedQuota(ctx context.Context, cfg *config.Config, t *config.Tenant, layout quota.Layout, all []connector.Limit, logger *slog.Logger, w io.Writer) (opts []connector.Option, stop func()) {
	stop = func() {}
	if cfg.QuotaScope != quota.ScopeShared || len(t.RateLimits) == 0 {
		return nil, stop
	}
	alone := func(err error) ([]connector.Option, func()) {
		fmt.Fprintf(w, "alert-domains: get: counting the quota alone: %v\n", err)
		return nil, stop
	}
	if cfg.NATSURL == "" {
		return alone(fmt.Errorf("NATS_URL is empty"))
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

// tenantQuota is, for the metrics, the quota the client of each tenant of
// the current set spends (a tenant's own limiter, or the shared quota of
// its app registration), nil for a tenant that is not in the set.
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
