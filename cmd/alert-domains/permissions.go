package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/tenants"
)

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
	sem := make(chan struct{}, permissionChecks)
	var wg sync.WaitGroup
	for i, name := range names {
		l, ok := set.Lookup(name)
		client, isClient := l.(*connector.Client)
		if !ok || !isClient {
			continue
		}
		out[i] = permissionCheck{tenant: name, api: client.API()}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, permissionTimeout)
			defer cancel()
			out[i].perm, out[i].err = client.CheckPermission(cctx)
		})
	}
	wg.Wait()
	return slices.DeleteFunc(out, func(c permissionCheck) bool { return c.tenant == "" })
}

// reportPermissions logs each check that found a problem and sets the metric.
func reportPermissions(ctx context.Context, logger *slog.Logger, m *metrics.Metrics, checks []permissionCheck) {
	for _, c := range checks {
		if m != nil {
			m.Permission(c.tenant, c.api, c.perm)
		}
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
