package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/lifecycle"
	"github.com/alert-domains/alert-domains/metrics"
)

// tenantsFileCheck is how often the tenants file is read for a change.
const tenantsFileCheck = 5 * time.Second

// reloadActor reloads TENANTS_FILE on SIGHUP (caught from now on) and when its content changes.
func (s *service) reloadActor(m *metrics.Metrics, count func(outcome string)) lifecycle.Actor {
	sum := func() ([sha256.Size]byte, bool) {
		data, err := config.ReadTenantsFile(s.cfg.TenantsFile)
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
			if now, ok := sum(); ok {
				last = now
			}
			list, changed, err := s.clients.reload(ctx)
			if err != nil {
				count(metrics.ReloadRefused)
				s.logger.Error("tenants file not reloaded: the running tenants stay", slog.String("file", s.cfg.TenantsFile),
					slog.String("reason", reason), slog.Any("error", err))
				continue
			}
			m.SetTenants(tenantAPIs(list))
			count(metrics.ReloadApplied)
			s.logger.Info("tenants reloaded", slog.String("file", s.cfg.TenantsFile), slog.String("reason", reason), slog.Any("tenants", slices.Sorted(maps.Keys(tenantAPIs(list)))))
			warnRetirement(s.logger, list)
			set := s.clients.router.Set()
			checks.Go(func() { reportPermissions(ctx, s.logger, m, checkPermissions(ctx, set, changed)) })
		}
	})
}
