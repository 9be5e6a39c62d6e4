package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
)

// TestSharedLimitsAgreePerWindow: the shared quota keeps one stream per
// window, so tenants whose limits of one window differ are a configuration
// error naming the tenant and the field; limits that agree, or windows of
// their own, are served.
func TestSharedLimitsAgreePerWindow(t *testing.T) {
	cfg := &config.Config{TenantsFile: "/etc/alert-domains/tenants.yaml"}
	perMinute := func(n int) []connector.Limit { return []connector.Limit{{Count: n, Window: time.Minute}} }
	list := []config.Tenant{
		{Name: "contoso", RateLimits: perMinute(100)},
		{Name: "fabrikam", RateLimits: append(perMinute(100), connector.Limit{Count: 1500, Window: time.Hour})},
		{Name: "woodgrove"},
	}
	limits, err := sharedLimits(cfg, list)
	if err != nil || len(limits) != 2 {
		t.Fatalf("limits that agree: %v, %v", limits, err)
	}
	list = append(list, config.Tenant{Name: "initech", RateLimits: perMinute(50)})
	_, err = sharedLimits(cfg, list)
	var te *config.TenantsError
	if !errors.As(err, &te) || !errors.Is(err, config.ErrInvalid) || te.Tenant != "initech" || te.Field != "rateLimits" || !strings.Contains(err.Error(), "contoso") {
		t.Errorf("limits that differ: %v", err)
	}
}
