package quota_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/quota"
)

// TestPrimary: a window of DEFENDER_RATE_LIMITS keeps its count there
// whatever the tenants give; a window only tenants give takes the smallest
// count given; the order of the tenants does not matter.
func TestPrimary(t *testing.T) {
	perMinute := func(n int) connector.Limit { return connector.Limit{Count: n, Window: time.Minute} }
	perSecond := func(n int) connector.Limit { return connector.Limit{Count: n, Window: time.Second} }
	perHour := connector.Limit{Count: 1500, Window: time.Hour}
	for _, c := range []struct {
		name     string
		defaults []connector.Limit
		tenants  [][]connector.Limit
		want     []connector.Limit
	}{
		{"no tenants", []connector.Limit{perMinute(100), perHour}, nil, []connector.Limit{perMinute(100), perHour}},
		{"defaults win", []connector.Limit{perMinute(100)}, [][]connector.Limit{{perMinute(50)}, {perMinute(200)}}, []connector.Limit{perMinute(100)}},
		{"smallest of the tenants", nil, [][]connector.Limit{{perSecond(5), perMinute(200)}, {perSecond(2)}}, []connector.Limit{perSecond(2), perMinute(200)}},
		{"other order", nil, [][]connector.Limit{{perSecond(2)}, {perSecond(5), perMinute(200)}}, []connector.Limit{perSecond(2), perMinute(200)}},
		{"a window given twice", []connector.Limit{perMinute(100), perMinute(80)}, [][]connector.Limit{{perMinute(50)}}, []connector.Limit{perMinute(80)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := quota.Primary(c.defaults, c.tenants...); !slices.Equal(got, c.want) {
				t.Errorf("Primary = %v, want %v", got, c.want)
			}
		})
	}
	// Every count of a window has its own stream and subjects, which
	// never overlap another's.
	layout := quota.NewLayout("svc", []connector.Limit{perMinute(100)})
	names := map[string]bool{}
	for _, l := range quota.Enforced([]connector.Limit{perMinute(100)}, []connector.Limit{perMinute(50), perHour}, []connector.Limit{perMinute(50)}) {
		cfg := layout.StreamConfig(l, 1, time.Second)
		if names[cfg.Name] || cfg.MaxMsgsPerSubject != int64(l.Count) {
			t.Errorf("limit %v: stream %s allowing %d", l, cfg.Name, cfg.MaxMsgsPerSubject)
		}
		names[cfg.Name] = true
	}
	if want := map[string]bool{"QUOTA_svc_60000ms": true, "QUOTA_svc_60000ms_50": true, "QUOTA_svc_3600000ms_1500": true}; !maps.Equal(names, want) {
		t.Errorf("streams %v, want %v", names, want)
	}
}

// TestRegistrationKeyIgnoresCase: Entra reads tenant and client IDs without
// case, so tenants that write one registration in two cases share its quota.
func TestRegistrationKeyIgnoresCase(t *testing.T) {
	lower := quota.Registration{Cloud: "public", API: connector.Graph, TenantID: "6f1c2b9e-0000-4000-8000-00000000000a", ClientID: "0a3e5f7d-0000-4000-8000-00000000000b"}
	upper := lower
	upper.TenantID, upper.ClientID = strings.ToUpper(lower.TenantID), strings.ToUpper(lower.ClientID)
	if lower.Key() != upper.Key() {
		t.Errorf("keys %s and %s for one registration", lower.Key(), upper.Key())
	}
	if other := (quota.Registration{Cloud: "public", API: connector.Graph, TenantID: lower.TenantID, ClientID: "0a3e5f7d-0000-4000-8000-00000000000c"}); other.Key() == lower.Key() {
		t.Error("two registrations share a key")
	}
}
