package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/tenants"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "serve\n\nRuns the service: pulls alert IDs from REQUEST_SUBJECT, asks Defender for their\ndomains and publishes one result per request. Configured by the environment.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("serve takes no arguments")
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
	warnRetirement(logger, list)
	m := metrics.New()
	m.SetTenants(tenantAPIs(list))
	opts := []connector.Option{connector.WithObserver(m), connector.WithHTTPClient(connector.NewHTTPClient(cfg.Concurrency))}
	if fromFile {
		svc, err := newTenantsService(cfg, e, list, logger, m, opts)
		if err != nil {
			return err
		}
		return svc.run(ctx)
	}
	shared, err := newServeQuota(cfg, logger, m)
	if err != nil {
		return err
	}
	if shared != nil {
		opts = append(opts, connector.WithQuota(shared))
	}
	opts = append(opts, connector.WithObserver(m.Tenant(config.DefaultTenant, cfg.API)))
	client, err := newConnector(cfg, nil, opts...)
	if err != nil {
		return configError(err)
	}
	// The one tenant "default" of the AZURE_* variables: its cache keys
	// are the alert IDs alone, as before tenants, so its cache stays valid.
	set, err := tenants.New(list, func(*config.Tenant) (tenants.Lookup, error) { return client, nil })
	if err != nil {
		return err
	}
	svc := &service{cfg: cfg, logger: logger, lookup: client, limiter: client.Limiter(), shared: shared, metrics: m,
		tenants: tenants.NewRouter(set), plainTenant: config.DefaultTenant}
	return svc.run(ctx)
}

// newTenantsService is serve for the tenants of TENANTS_FILE: each with its
// own Defender client (credential and token cache, API URL, scope, quota and
// cooldown), reloaded on SIGHUP.
func newTenantsService(cfg *config.Config, e *env, list []config.Tenant, logger *slog.Logger, m *metrics.Metrics, opts []connector.Option) (*service, error) {
	clients, err := newTenantClients(cfg, e, list, logger, m, opts)
	if err != nil {
		return nil, err
	}
	return &service{cfg: cfg, logger: logger, metrics: m, tenants: clients.router, clients: clients}, nil
}

// tenantAPIs are the names of list with the API of each, the values of the
// metrics' tenant and api labels.
func tenantAPIs(list []config.Tenant) map[string]connector.API {
	apis := make(map[string]connector.API, len(list))
	for _, t := range list {
		apis[t.Name] = t.API
	}
	return apis
}

// tenantNames are the names of list.
func tenantNames(list []config.Tenant) []string {
	names := make([]string, len(list))
	for i, t := range list {
		names[i] = t.Name
	}
	return names
}

// loadConfig reads the environment; a mistake there is exit status 2.
func loadConfig(e *env) (*config.Config, error) {
	cfg, err := config.Load(e.lookupEnv)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return cfg, nil
}

// configError gives configuration mistakes found while building parts
// (credentials, URLs) exit status 2.
func configError(err error) error {
	if errors.Is(err, config.ErrInvalid) || errors.Is(err, connector.ErrCredentialConfig) || errors.Is(err, connector.ErrConfig) {
		return &exitError{code: 2, err: err}
	}
	return err
}
