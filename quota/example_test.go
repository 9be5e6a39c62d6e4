package quota_test

import (
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/quota"
)

// The names the shared quota of the service alert-domains uses in
// JetStream for DEFENDER_RATE_LIMITS=100/1m (the primary limits) and a
// tenant whose rateLimits are 50/1m: one stream per window and count, one
// subject per app registration.
func Example() {
	reg := quota.Registration{Cloud: "public", TenantID: "6f1c2b9e-0000-4000-8000-000000000001", ClientID: "0a3e5f7d-0000-4000-8000-000000000002"}
	limit := connector.Limit{Count: 100, Window: time.Minute}
	tenant := connector.Limit{Count: 50, Window: time.Minute}
	layout := quota.NewLayout("alert-domains", quota.Primary([]connector.Limit{limit}, []connector.Limit{tenant}))
	cfg := layout.StreamConfig(limit, 3, 30*time.Second)
	fmt.Println(cfg.Name, cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.Replicas)
	fmt.Println(layout.Subject(limit, reg.Key()))
	fmt.Println(layout.Stream(tenant), layout.Subject(tenant, reg.Key()))
	fmt.Println(quota.CooldownBucket("alert-domains"))
	// Output:
	// QUOTA_alert-domains_60000ms 100 1m31s 3
	// alert_domains.quota.alert-domains.60000ms.aa81685f2875da0ad78bc51b1e96e73a
	// QUOTA_alert-domains_60000ms_50 alert_domains.quota.alert-domains.60000ms_50.aa81685f2875da0ad78bc51b1e96e73a
	// QUOTA_alert-domains_COOLDOWN
}
