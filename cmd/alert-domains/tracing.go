package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/tracing"
)

// newTracing sets up the process's traces as the OTEL_* variables say.
func newTracing(e *env, logger *slog.Logger) (*tracing.Provider, error) {
	p, err := tracing.New(context.Background(), e.lookupEnv, e.stderr, logger.With(slog.String("component", "tracing")))
	if err != nil {
		return nil, configError(err)
	}
	return p, nil
}

// tracesActor exports the spans left at the stop; it belongs in the first layer, which stops last.
func tracesActor(p *tracing.Provider, timeout time.Duration) []lifecycle.Actor {
	if !p.Enabled() {
		return nil
	}
	return []lifecycle.Actor{lifecycle.Func("traces", func(ctx context.Context) error {
		<-ctx.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return p.Shutdown(fctx)
	})}
}

const cliFlushTimeout = 5 * time.Second
