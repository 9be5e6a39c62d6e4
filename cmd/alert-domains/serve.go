package main

import (
	"context"
	"errors"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/metrics"
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
	logger := newLogger(cfg, e)
	m := metrics.New()
	opts := []connector.Option{connector.WithObserver(m), connector.WithHTTPClient(defenderHTTPClient(cfg.Concurrency))}
	shared, err := newServeQuota(cfg, logger, m)
	if err != nil {
		return err
	}
	if shared != nil {
		opts = append(opts, connector.WithQuota(shared))
	}
	client, err := newConnector(cfg, nil, opts...)
	if err != nil {
		return configError(err)
	}
	svc := &service{cfg: cfg, logger: logger, lookup: client, limiter: client.Limiter(), shared: shared, metrics: m}
	return svc.run(ctx)
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
