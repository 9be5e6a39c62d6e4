package ops

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/message"
)

// TestReadStatus: what ReadStatus gathers from the streams, the results
// and the replicas, with and without tenants.
func TestReadStatus(t *testing.T) {
	e := newTestEnv(t, nil)
	a := e.request(t, "contoso", "alert_a", nil)
	b := e.request(t, "contoso", "alert_b", nil)
	c := e.request(t, "fabrikam", "alert_c", nil)
	e.request(t, "contoso", "alert_pending", nil)
	e.failure(t, "contoso", "alert_a", message.KindUnavailable, a)
	r := message.Success("alert_b", nil, 3, false, time.Now())
	r.Tenant = "contoso"
	e.result(t, r, b)
	e.failure(t, "fabrikam", "alert_c", message.KindNotFound, c)
	stop, err := ServePresence(e.nc, e.cfg, time.Now(), func() error { return errors.New("not bound yet") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	named := []config.Tenant{{Name: "contoso"}, {Name: "fabrikam"}, {Name: "idle"}}
	tests := []struct {
		name    string
		tenants []config.Tenant
		want    map[string]TenantStatus // Results, Stored and Pending of each
	}{
		{"tenants named by the results", nil, map[string]TenantStatus{
			"contoso":  {Results: 2, Stored: 3, Pending: 1},
			"fabrikam": {Results: 1, Stored: 1, Pending: 0},
		}},
		{"tenants of the file", named, map[string]TenantStatus{
			"contoso":  {Results: 2, Stored: 3, Pending: 1},
			"fabrikam": {Results: 1, Stored: 1, Pending: 0},
			"idle":     {Pending: -1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ReadStatus(t.Context(), e.js, e.cfg, StatusQuery{Tenants: tt.tenants}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Missing) != 0 || st.Streams[0].Info.State.Msgs != 4 || st.Consumers[0].Info == nil ||
				st.Cache.Stream != e.cfg.ResultStream || st.Cache.Issue != "" || st.Cache.Results != 1 || st.Cache.TTL != e.cfg.CacheTTL {
				t.Errorf("topology: missing %v, streams %+v, cache %+v", st.Missing, st.Streams, st.Cache)
			}
			if want := map[message.Kind]int{message.KindUnavailable: 1, message.KindNotFound: 1}; !maps.Equal(st.Failures, want) {
				t.Errorf("failures %v, want %v", st.Failures, want)
			}
			if r := st.Quota.Rows; len(r) != 2 || r[0].Used != 5 || r[1].Used != 5 {
				t.Errorf("quota rows %+v, want 5 attempts in each window", r)
			}
			if len(st.Replicas) != 1 || st.Replicas[0].Bound || st.Replicas[0].Issue != "not bound yet" {
				t.Errorf("replicas %+v", st.Replicas)
			}
			if !st.PerTenant() || len(st.ByTenant) != len(tt.want) {
				t.Fatalf("tenants %v, want %v", st.ByTenant, tt.want)
			}
			for name, w := range tt.want {
				got := st.ByTenant[name]
				if got == nil || got.Results != w.Results || got.Stored != w.Stored || got.Pending != w.Pending {
					t.Errorf("tenant %s: %+v, want %+v", name, got, w)
				}
			}
		})
	}

	// Without the topology: what is missing, by name.
	bare := newTestEnv(t, map[string]string{"CACHE_TTL": "0"})
	for _, s := range []string{bare.cfg.RequestStream, bare.cfg.ResultStream} {
		if err := bare.js.DeleteStream(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	st, err := ReadStatus(t.Context(), bare.js, bare.cfg, StatusQuery{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stream " + bare.cfg.RequestStream, "stream " + bare.cfg.ResultStream, "consumer " + bare.cfg.ConsumerName}
	if len(st.Missing) < len(want) || st.Missing[0] != want[0] || st.Missing[1] != want[1] || st.Missing[2] != want[2] || st.Cache.Stream != "" {
		t.Errorf("missing %v, want %v first; cache %+v", st.Missing, want, st.Cache)
	}
}
