package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/tenants"
)

// loadTenants is the tenants of TENANTS_FILE (fromFile), or the tenant of the AZURE_* variables.
func loadTenants(cfg *config.Config, e *env) (list []config.Tenant, fromFile bool, err error) {
	if fromFile = cfg.TenantsFile != ""; fromFile {
		list, err = config.LoadTenants(cfg.TenantsFile, cfg, e.lookupEnv)
	} else {
		var t config.Tenant
		t, err = cfg.EnvironmentTenant()
		list = []config.Tenant{t}
	}
	if err != nil {
		err = &exitError{code: 2, err: err}
	}
	return list, fromFile, err
}

func newTenantConnector(cfg *config.Config, t *config.Tenant, hc *http.Client, extra ...connector.Option) (*connector.Client, error) {
	credCfg := t.Credential
	opts := []connector.Option{
		connector.WithTimeout(cfg.DefenderTimeout),
		connector.WithBackoff(cfg.RetryInitialInterval, cfg.RetryMaxInterval, cfg.RetryMaxElapsed),
		connector.WithQuota(connector.NewLimiter(t.RateLimits)),
	}
	if hc != nil {
		credCfg.Transport = hc
		opts = append(opts, connector.WithHTTPClient(hc))
	}
	cred, err := connector.NewCredential(credCfg)
	if err != nil {
		return nil, err
	}
	return connector.New(t.API, t.APIURL, cred, t.Scope, append(opts, extra...)...)
}

// sharedQuota lays out the shared quota's streams for list and returns their limits.
func sharedQuota(cfg *config.Config, list []config.Tenant) (quota.Layout, []connector.Limit, error) {
	seen := map[string][2]string{} // a registration's rate limits, and the first tenant that gives them
	lists := make([][]connector.Limit, len(list))
	for i := range list {
		t := &list[i]
		lists[i] = t.RateLimits
		key, limits := registration(t).Key(), quotaText(quota.Enforced(t.RateLimits))
		if o, ok := seen[key]; !ok {
			seen[key] = [2]string{limits, t.Name}
		} else if o[0] != limits {
			return quota.Layout{}, nil, &config.TenantsError{File: cfg.TenantsFile, Tenant: t.Name, Index: i, Field: "rateLimits",
				Reason: fmt.Sprintf("%s, and tenant %q of the same app registration has %s: one registration has one Defender quota, so with QUOTA_SCOPE=shared its tenants give it the same rate limits", limits, o[1], o[0])}
		}
	}
	return quota.NewLayout(cfg.ConsumerName, quota.Primary(cfg.RateLimits, lists...)), quota.Enforced(lists...), nil
}

// registration is the app registration whose quota tenant t spends.
func registration(t *config.Tenant) quota.Registration {
	return quota.Registration{API: t.API, Cloud: t.Cloud, TenantID: t.Credential.TenantID, ClientID: t.Credential.ClientID}
}

// prepareQuotaLimits provisions (or, with PROVISION=false, verifies) the shared quota's streams and bucket.
func prepareQuotaLimits(ctx context.Context, js jetstream.JetStream, cfg *config.Config, layout quota.Layout, limits []connector.Limit, logger *slog.Logger) error {
	if cfg.Provision {
		return broker.Retrying(ctx, logger, func() error {
			return quota.Provision(ctx, js, layout, limits, cfg.StreamReplicas, cfg.DefenderTimeout)
		})
	}
	return quota.Verify(ctx, js, layout, limits)
}

// tenantClients keeps the Defender clients of the tenants served and their shared quotas.
type tenantClients struct {
	cfg      *config.Config
	e        *env
	logger   *slog.Logger
	opts     []connector.Option // for every client, after its own
	m        *metrics.Metrics   // nil: none (get)
	obs      quota.Observer     // the shared quota's counters; nil for none
	shared   bool               // QUOTA_SCOPE=shared with limits at start
	router   *tenants.Router
	fromFile bool

	mu      sync.Mutex
	layout  quota.Layout             // names the quota streams
	limits  []connector.Limit        // what start provisions the quota streams for
	quotas  map[string]*quota.Shared // by registration and streams
	started map[*quota.Shared]bool
	js      jetstream.JetStream // set by start
	runCtx  context.Context     // set while runQuotas runs
	wg      sync.WaitGroup
}

// newTenantClients builds the clients of list, or of its tenants named only.
func newTenantClients(cfg *config.Config, e *env, list []config.Tenant, fromFile bool, logger *slog.Logger, m *metrics.Metrics, opts []connector.Option, only ...string) (*tenantClients, error) {
	c := &tenantClients{cfg: cfg, e: e, logger: logger, opts: opts, m: m, fromFile: fromFile,
		quotas: map[string]*quota.Shared{}, started: map[*quota.Shared]bool{}}
	if cfg.QuotaScope == quota.ScopeShared {
		var err error
		if c.layout, c.limits, err = sharedQuota(cfg, list); err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		c.shared = len(c.limits) > 0
		if c.shared && m != nil {
			if c.obs, err = m.SharedQuota(); err != nil {
				return nil, err
			}
		}
	}
	if len(only) > 0 {
		list = slices.DeleteFunc(slices.Clone(list), func(t config.Tenant) bool { return !slices.Contains(only, t.Name) })
	}
	set, err := tenants.New(list, c.build)
	if err != nil {
		return nil, configError(err)
	}
	c.router = tenants.NewRouter(set)
	return c, nil
}

// build makes the client of one tenant, with its registration's shared quota.
func (c *tenantClients) build(t *config.Tenant) (tenants.Lookup, error) {
	var opts []connector.Option
	if c.m != nil {
		opts = append(opts, connector.WithObserver(c.m.Tenant(t.Name, t.API)))
	}
	if c.shared && len(t.RateLimits) > 0 {
		key := registration(t).Key()
		for _, l := range quota.Enforced(t.RateLimits) {
			key += " " + c.layout.Stream(l)
		}
		if c.quotas[key] == nil {
			q, err := quota.NewShared(c.layout, registration(t), t.RateLimits, quota.WithObserver(c.obs), quota.WithHold(c.cfg.DefenderTimeout),
				quota.WithLogger(c.logger.With(slog.String("component", "quota"), slog.String("tenant", t.Name))))
			if err != nil {
				return nil, err
			}
			c.quotas[key] = q
		}
		opts = append(opts, connector.WithQuota(c.quotas[key]))
	}
	return newTenantConnector(c.cfg, t, c.e.hc, append(opts, c.opts...)...)
}

func (c *tenantClients) client(name string) *connector.Client {
	l, _ := c.router.Set().Lookup(name)
	client, _ := l.(*connector.Client)
	return client
}

func (c *tenantClients) noteTenants(list []config.Tenant) {
	for _, t := range list {
		c.logger.Info("tenant", slog.String("tenant", t.Name), slog.String("cloud", t.Cloud), slog.String("api_url", t.APIURL),
			slog.String("credential", t.CredentialSource))
	}
}

// start provisions the shared quota's streams, or seeds each tenant's limiter with its recent calls.
func (c *tenantClients) start(ctx context.Context, js jetstream.JetStream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.js = js
	if c.shared {
		return prepareQuotaLimits(ctx, js, c.cfg, c.layout, c.limits, c.logger)
	}
	return c.seedLimiters(ctx, js)
}

// runQuotas runs every shared quota, those a reload adds included, until ctx ends.
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
		if !c.started[q] {
			c.started[q] = true
			ctx := c.runCtx
			c.wg.Go(func() { _ = q.Run(ctx, c.js) })
			c.logger.Info("shared Defender quota", slog.String("registration_key", q.Registration().Key()), slog.Int("stream_replicas", c.cfg.StreamReplicas))
		}
	}
}

// reload reads TENANTS_FILE again and swaps the tenants served; an invalid file changes nothing.
func (c *tenantClients) reload(ctx context.Context) (list []config.Tenant, changed []string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if list, err = config.LoadTenants(c.cfg.TenantsFile, c.cfg, c.e.lookupEnv); err != nil {
		return nil, nil, err
	}
	prev, limits := c.layout, []connector.Limit(nil)
	if c.cfg.QuotaScope == quota.ScopeShared {
		if c.layout, limits, err = c.reloadLayout(list); err != nil {
			c.layout = prev
			return nil, nil, err
		}
	}
	known := maps.Clone(c.quotas)
	old := c.router.Set()
	set, err := tenants.Rebuild(old, list, c.build)
	if err == nil && c.js != nil && len(limits) > 0 {
		err = prepareQuotaLimits(ctx, c.js, c.cfg, c.layout, limits, c.logger)
	}
	if err != nil {
		maps.DeleteFunc(c.quotas, func(k string, _ *quota.Shared) bool { return known[k] == nil }) // of a set never used
		c.layout = prev
		return nil, nil, err
	}
	c.runQuotasLocked()
	c.router.Swap(set)
	c.noteTenants(list)
	for _, t := range list {
		was, _ := old.Lookup(t.Name)
		if now, _ := set.Lookup(t.Name); now != was {
			changed = append(changed, t.Name)
		}
	}
	return list, changed, nil
}

// reloadLayout is the shared quota's layout for a reloaded file; it refuses
// to rename a stream in use, or this replica would count apart from the others.
func (c *tenantClients) reloadLayout(list []config.Tenant) (quota.Layout, []connector.Limit, error) {
	layout, limits, err := sharedQuota(c.cfg, list)
	switch {
	case err != nil:
		return quota.Layout{}, nil, err
	case len(limits) > 0 && !c.shared:
		return quota.Layout{}, nil, fmt.Errorf("%w: TENANTS_FILE: the tenants had no Defender rate limits at start; restart to give them some", config.ErrInvalid)
	}
	was := c.layout.Primary() // one limit per window
	for _, now := range layout.Primary() {
		i := slices.IndexFunc(was, func(l connector.Limit) bool { return l.Window == now.Window })
		if i >= 0 && was[i].Count != now.Count {
			return quota.Layout{}, nil, fmt.Errorf("%w: TENANTS_FILE: the smallest count of %s, a window DEFENDER_RATE_LIMITS does not give, names the shared quota's streams and would change from %d to %d; restart every replica, or give that window in DEFENDER_RATE_LIMITS",
				config.ErrInvalid, metrics.ShortDuration(now.Window), was[i].Count, now.Count)
		}
	}
	return layout, limits, nil
}

// seedTimeout bounds the read of recent results at start.
const seedTimeout = 10 * time.Second

// seedLimiters logs in each tenant's own limiter its recent calls.
func (c *tenantClients) seedLimiters(ctx context.Context, js jetstream.JetStream) error {
	set := c.router.Set()
	span := time.Duration(0)
	for _, name := range set.Names() {
		t, _ := set.Get(name)
		for _, l := range t.RateLimits {
			span = max(span, min(l.Window, broker.ResultMaxAge))
		}
	}
	if span == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, seedTimeout)
	defer cancel()
	calls, err := ops.RecentCalls(ctx, js, c.cfg, time.Now().Add(-span))
	if err != nil {
		c.logger.Warn("the quota of this process counts from now: recent calls unknown", slog.Any("error", err))
		return nil
	}
	n := 0
	for name, starts := range calls {
		if client := c.client(name); client != nil && client.Limiter() != nil {
			client.Limiter().Seed(starts)
			n += len(starts)
		}
	}
	c.logger.Info("quota of this process", slog.String("scope", quota.ScopeProcess), slog.Int("recent_calls", n))
	return nil
}

// tenantsFileCheck is how often the tenants file is read for a change.
const tenantsFileCheck = 5 * time.Second

// reloadActor reloads TENANTS_FILE on SIGHUP (caught from now on) and when its content changes.
func (s *service) reloadActor(count func(outcome string)) lifecycle.Actor {
	sum := func() ([sha256.Size]byte, bool) { // of the file and the credential files of the running tenants
		data, err := config.ReadTenantsFile(s.cfg.TenantsFile)
		set := s.clients.router.Set()
		for _, name := range set.Names() {
			t, _ := set.Get(name)
			data = fmt.Append(data, config.FileSums(slices.Collect(maps.Keys(t.Files))...)) // fmt prints a map sorted by key
		}
		return sha256.Sum256(data), err == nil
	}
	last, _ := sum()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return lifecycle.Func("tenants reload", func(ctx context.Context) error {
		defer signal.Stop(hup)
		var checks sync.WaitGroup
		defer checks.Wait()
		tick := time.NewTicker(tenantsFileCheck)
		defer tick.Stop()
		for {
			reason := "SIGHUP"
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
			case <-tick.C:
				if now, ok := sum(); !ok || now == last {
					continue
				}
				reason = "file changed"
			}
			if now, ok := sum(); ok { // an unreadable file is not a new content
				last = now
			}
			list, changed, err := s.clients.reload(ctx)
			if err != nil {
				count(metrics.ReloadRefused)
				s.logger.Error("tenants file not reloaded: the running tenants stay", slog.String("file", s.cfg.TenantsFile),
					slog.String("reason", reason), slog.Any("error", err))
				continue
			}
			last, _ = sum() // with the credential files the new tenants name
			s.metrics.SetTenants(tenantAPIs(list))
			count(metrics.ReloadApplied)
			s.logger.Info("tenants reloaded", slog.String("file", s.cfg.TenantsFile), slog.String("reason", reason), slog.Any("tenants", slices.Sorted(maps.Keys(tenantAPIs(list)))))
			warnRetirement(s.logger, list)
			set := s.clients.router.Set()
			checks.Go(func() { reportPermissions(ctx, s.logger, s.metrics, checkPermissions(ctx, set, changed)) })
		}
	})
}

// permissionCheck is what one tenant's token says of the permission its API needs.
type permissionCheck struct {
	tenant string
	api    connector.API
	perm   connector.Permission
	err    error // no token could be had
}

// permissionChecks bounds the token requests made at once; permissionTimeout bounds one.
const (
	permissionChecks  = 4
	permissionTimeout = 30 * time.Second
)

// checkPermissions gets a token for each tenant of names in set and reads its roles claim.
func checkPermissions(ctx context.Context, set *tenants.Set, names []string) []permissionCheck {
	out := make([]permissionCheck, len(names))
	var g errgroup.Group
	g.SetLimit(permissionChecks)
	for i, name := range names {
		l, _ := set.Lookup(name)
		client, ok := l.(*connector.Client)
		if !ok {
			continue
		}
		out[i] = permissionCheck{tenant: name, api: client.API()}
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, permissionTimeout)
			defer cancel()
			out[i].perm, out[i].err = client.CheckPermission(cctx)
			return nil
		})
	}
	_ = g.Wait() // each check keeps its own error
	return slices.DeleteFunc(out, func(c permissionCheck) bool { return c.tenant == "" })
}

// reportPermissions logs each check that found a problem and sets the metric.
func reportPermissions(ctx context.Context, logger *slog.Logger, m *metrics.Metrics, checks []permissionCheck) {
	for _, c := range checks {
		m.Permission(c.tenant, c.api, c.perm)
		switch {
		case ctx.Err() != nil:
			return
		case c.err != nil:
			logger.Warn("no access token for the tenant: its requests fail until the credential works",
				slog.String("tenant", c.tenant), slog.String("api", string(c.api)), slog.Any("error", c.err))
		case c.perm == connector.PermissionMissing:
			logger.Error("the app registration lacks the permission its API needs: requests fail as forbidden until an admin grants consent, then replay them",
				slog.String("tenant", c.tenant), slog.String("api", string(c.api)),
				slog.String("permission", c.api.Permission()), slog.String("consent", consentStep(c.api)))
		}
	}
}

// consentStep says where an admin grants the permission api needs.
func consentStep(api connector.API) string {
	if api == connector.MDE {
		return "Entra admin center > App registrations > the app > API permissions > Add a permission > APIs my organization uses > WindowsDefenderATP > Application permissions > URL.Read.All, then Grant admin consent"
	}
	return "Entra admin center > App registrations > the app > API permissions > Add a permission > Microsoft Graph > Application permissions > SecurityAlert.Read.All, then Grant admin consent"
}

// warnRetirement logs that Microsoft retires the endpoint API, when any tenant uses it.
func warnRetirement(logger *slog.Logger, list []config.Tenant) {
	var on []string
	for _, t := range list {
		if t.API == connector.MDE {
			on = append(on, t.Name)
		}
	}
	if len(on) == 0 {
		return
	}
	logger.Warn("Microsoft retires the Defender for Endpoint API on "+connector.MDERetirement+" (MC1220762): set DEFENDER_API=graph (or api: graph per tenant) after granting SecurityAlert.Read.All; see docs/migrating-to-graph.md",
		slog.Any("tenants", on))
}
