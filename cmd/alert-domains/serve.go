package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/metrics"
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
	svc, err := newService(cfg, e, list, fromFile, nil, logger)
	if err != nil {
		return err
	}
	return svc.run(ctx)
}

// newService assembles serve for the tenants of list, their calls sent through hc if not nil.
func newService(cfg *config.Config, e *env, list []config.Tenant, fromFile bool, hc *http.Client, logger *slog.Logger) (*service, error) {
	warnRetirement(logger, list)
	traces, err := newTracing(e, logger)
	if err != nil {
		return nil, err
	}
	logger = traces.Logger(logger)
	m := metrics.New()
	m.SetTenants(tenantAPIs(list))
	opts := []connector.Option{connector.WithTracerProvider(traces.TracerProvider())}
	if hc == nil {
		opts = append(opts, connector.WithHTTPClient(connector.NewHTTPClient(cfg.Concurrency)))
	}
	clients, err := newTenantClients(cfg, e, list, fromFile, hc, logger, m, opts)
	if err != nil {
		return nil, err
	}
	clients.noteTenants(list)
	return &service{cfg: cfg, e: e, logger: logger, metrics: m, clients: clients, traces: traces}, nil
}

// tenantAPIs are the names of list with the API of each, the values of the metrics' tenant and api labels.
func tenantAPIs(list []config.Tenant) map[string]connector.API {
	apis := make(map[string]connector.API, len(list))
	for _, t := range list {
		apis[t.Name] = t.API
	}
	return apis
}
