package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/quota"
	"github.com/alert-domains/alert-domains/tenants"
)

// statusPermissionTenants bounds the tenants whose token status asks for:
// one token request each.
const statusPermissionTenants = 50

// statusAPIs reads, beside the rest of status, each tenant's API and what
// its token says of the permission that API needs; a tenant without a
// usable credential here is shown with the reason.
func statusAPIs(ctx context.Context, cfg *config.Config, list []config.Tenant) <-chan []permissionCheck {
	out := make(chan []permissionCheck, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var checks, unusable []permissionCheck
		set, err := tenants.New(list[:min(len(list), statusPermissionTenants)], func(t *config.Tenant) (tenants.Lookup, error) {
			client, err := newTenantConnector(cfg, t, nil)
			if err != nil {
				unusable = append(unusable, permissionCheck{tenant: t.Name, api: t.API, err: err})
				return nil, nil
			}
			return client, nil
		})
		if err == nil {
			checks = checkPermissions(ctx, set, set.Names())
		}
		for _, t := range list[min(len(list), statusPermissionTenants):] {
			checks = append(checks, permissionCheck{tenant: t.Name, api: t.API, perm: connector.PermissionUnknown, err: errNotChecked})
		}
		out <- append(unusable, checks...)
	}()
	return out
}

const statusSynopsis = `status

Prints, on one screen, what an operator needs during an incident: the
streams (messages, bytes, age of the oldest), the consumers (pending,
ack-pending, redelivered, waiting), the replicas running now (each answers
on NATS; bound to the consumer or not), the failures of the last hour by kind,
the Microsoft API of each tenant with what its access token says of the
permission that API needs, and the configured quota with how much of it was
used.

With TENANTS_FILE (or results of more than one tenant), a line per tenant:
its results and failures by kind in the last hour, the requests stored on its
request subject, and the quota its app registration used.`

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", statusSynopsis)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("status takes no arguments (got %q)", fs.Arg(0))
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	// The tenants file is read for the names and app registrations: a
	// file status cannot use (its secrets are not here) leaves the lines
	// per tenant out, not the rest of the screen.
	list, fromFile, err := loadTenants(cfg, e)
	tenantsIssue := ""
	if err != nil && fromFile {
		tenantsIssue = err.Error()
	}
	apis := statusAPIs(ctx, cfg, list)
	if err != nil || !fromFile {
		list = nil
	}
	// status needs no credential, only the app registration it counts the
	// quota of.
	own, err := cfg.EnvironmentTenant()
	if err != nil {
		own.Credential.TenantID, own.Credential.ClientID = cfg.AzureTenantID, cfg.AzureClientID
	}
	q := ops.StatusQuery{Tenants: list, QuotaLimits: cfg.RateLimits, Registration: tenantRegistration(&own)}
	if list != nil && cfg.QuotaScope == quota.ScopeShared {
		// The quota streams of the tenants of the file, named as serve
		// names them.
		if q.QuotaLayout, q.QuotaLimits, err = sharedQuota(cfg, list); err != nil {
			tenantsIssue = err.Error()
			q.QuotaLimits = nil
		}
	}
	js, closeConn, err := connectClient(ctx, e, cfg, "status")
	if err != nil {
		return err
	}
	defer closeConn()
	st, err := ops.ReadStatus(ctx, js, cfg, q, time.Now())
	if err != nil {
		return err
	}
	st.TenantsIssue = tenantsIssue
	if err := printStatus(e.stdout, st, <-apis); err != nil {
		return err
	}
	if len(st.Missing) > 0 {
		return fmt.Errorf("missing on %s: %s (start 'alert-domains serve' with PROVISION=true, or check %s)",
			st.Server, strings.Join(st.Missing, ", "), "REQUEST_STREAM, RESULT_STREAM, CONSUMER_NAME and NATS_URL")
	}
	return nil
}
