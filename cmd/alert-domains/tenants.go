package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/quota"
)

// loadTenants is the tenants of the configuration: those of TENANTS_FILE,
// or the one tenant "default" that the AZURE_* variables form. fromFile
// reports which. A mistake is exit status 2; the environment's tenant comes
// with its error, for status to show.
func loadTenants(cfg *config.Config, e *env) (list []config.Tenant, fromFile bool, err error) {
	if cfg.TenantsFile == "" {
		t, err := cfg.EnvironmentTenant()
		if err != nil {
			err = &exitError{code: 2, err: err}
		}
		return []config.Tenant{t}, false, err
	}
	list, err = config.LoadTenants(cfg.TenantsFile, cfg, e.lookupEnv)
	if err != nil {
		return nil, true, &exitError{code: 2, err: err}
	}
	return list, true, nil
}

// newTenantConnector builds the Defender client of one tenant: its own
// credential (and token cache), API URL, scope and quota.
func newTenantConnector(cfg *config.Config, t *config.Tenant, hc *http.Client, extra ...connector.Option) (*connector.Client, error) {
	credCfg := t.Credential
	if hc != nil {
		credCfg.Transport = hc
	}
	cred, err := connector.NewCredential(credCfg)
	if err != nil {
		return nil, err
	}
	opts := []connector.Option{
		connector.WithTimeout(cfg.DefenderTimeout),
		connector.WithBackoff(cfg.RetryInitialInterval, cfg.RetryMaxInterval, cfg.RetryMaxElapsed),
		connector.WithLimiter(connector.NewLimiter(t.RateLimits)),
	}
	if hc != nil {
		opts = append(opts, connector.WithHTTPClient(hc))
	}
	return connector.New(t.API, t.APIURL, cred, t.Scope, append(opts, extra...)...)
}

// tenantRegistration is the app registration whose quota a tenant spends:
// for the tenant of the AZURE_* variables, the one registration(cfg) names.
func tenantRegistration(t *config.Tenant) quota.Registration {
	return quota.Registration{API: t.API, Cloud: t.Cloud, TenantID: t.Credential.TenantID, ClientID: t.Credential.ClientID}
}

// sharedQuota lays out the shared quota's streams for the tenants of list
// (quota.Primary: DEFENDER_RATE_LIMITS's count of each of its windows,
// otherwise the smallest count a tenant gives) and returns the limits they
// enforce together, one stream each: tenants whose counts of a window
// differ each have their own. Tenants of one app registration whose counts
// of a window differ are a configuration error naming them: their calls
// reach one Defender quota, which two streams would count apart.
func sharedQuota(cfg *config.Config, list []config.Tenant) (quota.Layout, []connector.Limit, error) {
	type window struct {
		count  int
		tenant string
	}
	seen := make(map[string]window) // the first count of a registration's window
	lists := make([][]connector.Limit, len(list))
	for i := range list {
		t := &list[i]
		lists[i] = t.RateLimits
		reg := tenantRegistration(t).Key()
		for _, l := range t.RateLimits {
			mine, _ := windowCount(t.RateLimits, l.Window)
			key := reg + " " + l.Window.String()
			o, ok := seen[key]
			if !ok {
				seen[key] = window{mine, t.Name}
			} else if o.count != mine {
				return quota.Layout{}, nil, &config.TenantsError{File: cfg.TenantsFile, Tenant: t.Name, Index: i, Field: "rateLimits",
					Reason: fmt.Sprintf("%d calls per %s, and tenant %q of the same app registration has %d: one registration has one Defender quota, so with QUOTA_SCOPE=shared its tenants give a window the same count", mine, l.Window, o.tenant, o.count)}
			}
		}
	}
	return quota.NewLayout(cfg.ConsumerName, quota.Primary(cfg.RateLimits, lists...)), quota.Enforced(lists...), nil
}

// windowCount is the count limits give window (the smallest, as the quota
// keeps, where it is given twice), and whether they give it.
func windowCount(limits []connector.Limit, window time.Duration) (int, bool) {
	n, ok := 0, false
	for _, l := range limits {
		if l.Window == window && (!ok || l.Count < n) {
			n, ok = l.Count, true
		}
	}
	return n, ok
}
