package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/tenants"
)

// tenantClients builds and keeps the Defender clients of the tenants of
// TENANTS_FILE, and reloads the file: it owns the shared quota of each
// app registration (QUOTA_SCOPE=shared) and runs them once NATS is there.
type tenantClients struct {
	cfg    *config.Config
	e      *env
	logger *slog.Logger
	opts   []connector.Option
	obs    *metrics.SharedQuota // nil: the quota counts per process
	m      *metrics.Metrics
	router *tenants.Router

	mu      sync.Mutex
	layout  quota.Layout             // names the quota streams
	limits  []connector.Limit        // what the quota streams enforce
	quotas  map[string]*quota.Shared // by registration and streams
	started map[*quota.Shared]bool
	js      jetstream.JetStream // set by start
	runCtx  context.Context     // set while runQuotas runs
	wg      sync.WaitGroup
	// secretEnv are the variables that hold tenants' secrets
	// (clientSecretEnv): hooks never see them.
	secretEnv []string
}

// newTenantClients builds the clients of list.
func newTenantClients(cfg *config.Config, e *env, list []config.Tenant, logger *slog.Logger, m *metrics.Metrics, opts []connector.Option) (*tenantClients, error) {
	c := &tenantClients{cfg: cfg, e: e, logger: logger, opts: opts, m: m, quotas: map[string]*quota.Shared{}, started: map[*quota.Shared]bool{}}
	if cfg.QuotaScope == quota.ScopeShared {
		layout, limits, err := sharedQuota(cfg, list)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		c.layout, c.limits = layout, limits
		if len(limits) > 0 {
			if c.obs, err = m.SharedQuota(); err != nil {
				return nil, err
			}
		}
	}
	set, err := tenants.New(list, c.build)
	if err != nil {
		return nil, configError(err)
	}
	c.router = tenants.NewRouter(set)
	c.noteTenants(list)
	return c, nil
}

// build makes the client of one tenant, with the shared quota of its app
// registration.
func (c *tenantClients) build(t *config.Tenant) (tenants.Lookup, error) {
	opts := c.opts
	if c.m != nil {
		opts = append(slices.Clip(opts), connector.WithObserver(c.m.Tenant(t.Name)))
	}
	if c.obs != nil && len(t.RateLimits) > 0 {
		key := tenantRegistration(t).Key()
		for _, l := range quota.Enforced(t.RateLimits) {
			key += " " + c.layout.Stream(l)
		}
		q, ok := c.quotas[key]
		if !ok {
			var err error
			if q, err = newTenantQuota(c.cfg, c.layout, t, c.logger, c.obs); err != nil {
				return nil, err
			}
			c.quotas[key] = q
		}
		opts = append(slices.Clip(opts), connector.WithQuota(q))
	}
	return newTenantConnector(c.cfg, t, nil, opts...)
}

// noteTenants logs the tenants served and remembers their secret variables.
func (c *tenantClients) noteTenants(list []config.Tenant) {
	for _, t := range list {
		if env, ok := strings.CutPrefix(t.CredentialSource, "clientSecretEnv "); ok && !slices.Contains(c.secretEnv, env) {
			c.secretEnv = append(c.secretEnv, env)
		}
		c.logger.Info("tenant", slog.String("tenant", t.Name), slog.String("cloud", t.Cloud), slog.String("api_url", t.APIURL),
			slog.String("credential", t.CredentialSource))
	}
}

// start provisions the quota streams; runQuotas then runs the shared
// quotas.
func (c *tenantClients) start(ctx context.Context, js jetstream.JetStream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.limits) > 0 {
		if err := prepareQuotaLimits(ctx, js, c.cfg, c.layout, c.limits, c.logger); err != nil {
			return err
		}
	}
	c.js = js
	return nil
}

// runQuotas runs every shared quota, those a reload adds included, until
// ctx ends, and returns once they have all stopped.
func (c *tenantClients) runQuotas(ctx context.Context) error {
	c.mu.Lock()
	c.runCtx = ctx
	c.runQuotasLocked()
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.runCtx = nil // a reload from now on starts none
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

func (c *tenantClients) runQuotasLocked() {
	if c.js == nil || c.runCtx == nil {
		return
	}
	for _, q := range c.quotas {
		if c.started[q] {
			continue
		}
		c.started[q] = true
		ctx := c.runCtx
		c.wg.Go(func() { _ = q.Run(ctx, c.js) })
		c.logger.Info("shared Defender quota", slog.String("registration_key", q.Registration().Key()), slog.Int("stream_replicas", c.cfg.StreamReplicas))
	}
}

// reload reads TENANTS_FILE again and swaps the tenants served: unchanged
// tenants keep their clients (token cache, quota, cooldown), new and
// changed ones get new clients, removed ones are no longer served. Work in
// flight finishes with the client it has. An invalid file changes nothing.
// A quota no tenant uses any more keeps its watch until shutdown.
func (c *tenantClients) reload(ctx context.Context) (names []string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list, err := config.LoadTenants(c.cfg.TenantsFile, c.cfg, c.e.lookupEnv)
	if err != nil {
		return nil, err
	}
	var limits []connector.Limit
	if c.cfg.QuotaScope == quota.ScopeShared {
		var layout quota.Layout
		if layout, limits, err = sharedQuota(c.cfg, list); err != nil {
			return nil, err
		}
		if len(limits) > 0 && c.obs == nil {
			return nil, fmt.Errorf("%w: TENANTS_FILE: the tenants had no Defender rate limits at start; restart to give them some", config.ErrInvalid)
		}
		// The streams' names hang on the primary counts: renamed here
		// alone, this replica would count apart from the others. A window
		// added or no longer used renames nothing in use.
		for _, now := range layout.Primary() {
			if was, ok := windowCount(c.layout.Primary(), now.Window); ok && was != now.Count {
				return nil, fmt.Errorf("%w: TENANTS_FILE: the smallest count of %s, a window DEFENDER_RATE_LIMITS does not give, names the shared quota's streams and would change from %d to %d; restart every replica, or give that window in DEFENDER_RATE_LIMITS",
					config.ErrInvalid, metrics.ShortDuration(now.Window), was, now.Count)
			}
		}
		prev := c.layout
		c.layout = layout
		defer func() {
			if err != nil {
				c.layout = prev
			}
		}()
	}
	known := make(map[string]bool, len(c.quotas))
	for k := range c.quotas {
		known[k] = true
	}
	set, err := tenants.Rebuild(c.router.Set(), list, c.build)
	if err == nil && c.js != nil && len(limits) > 0 {
		err = prepareQuotaLimits(ctx, c.js, c.cfg, c.layout, limits, c.logger)
	}
	if err != nil {
		for k := range c.quotas { // quotas of a set never used
			if !known[k] {
				delete(c.quotas, k)
			}
		}
		return nil, err
	}
	c.limits = limits
	c.runQuotasLocked()
	c.router.Swap(set)
	c.noteTenants(list)
	for _, t := range list {
		names = append(names, t.Name)
	}
	return names, nil
}
