package main

import (
	"fmt"
	"net/http"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/quota"
)

// loadTenants is the tenants of the configuration: those of TENANTS_FILE,
// or the one tenant "default" that the AZURE_* variables form. fromFile
// reports which. A mistake in the file is exit status 2.
func loadTenants(cfg *config.Config, e *env) (list []config.Tenant, fromFile bool, err error) {
	if cfg.TenantsFile == "" {
		return []config.Tenant{cfg.EnvironmentTenant()}, false, nil
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
	return connector.New(t.APIURL, cred, t.Scope, append(opts, extra...)...)
}

// tenantRegistration is the app registration whose quota a tenant spends:
// for the tenant of the AZURE_* variables, the one registration(cfg) names.
func tenantRegistration(t *config.Tenant) quota.Registration {
	return quota.Registration{Cloud: t.Cloud, TenantID: t.Credential.TenantID, ClientID: t.Credential.ClientID}
}

// sharedLimits are the limits the shared quota's streams enforce for every
// tenant: one stream per window holds one count, so with QUOTA_SCOPE=shared
// the tenants' limits of a window must agree. A tenant whose limits differ
// is a configuration error naming it.
func sharedLimits(cfg *config.Config, list []config.Tenant) ([]connector.Limit, error) {
	var out []connector.Limit
	first := map[string]string{}
	for _, t := range list {
		for _, l := range t.RateLimits {
			key := l.Window.String()
			for _, o := range out {
				if o.Window == l.Window && o.Count != l.Count {
					return nil, &config.TenantsError{File: cfg.TenantsFile, Tenant: t.Name, Index: indexOf(list, t.Name), Field: "rateLimits",
						Reason: fmt.Sprintf("%d calls per %s, and tenant %q has %d: with QUOTA_SCOPE=shared every tenant's limit of one window has the same count (or set QUOTA_SCOPE=process)", l.Count, l.Window, first[key], o.Count)}
				}
			}
			if _, seen := first[key]; !seen {
				first[key] = t.Name
				out = append(out, l)
			}
		}
	}
	return out, nil
}

func indexOf(list []config.Tenant, name string) int {
	for i, t := range list {
		if t.Name == name {
			return i
		}
	}
	return -1
}
