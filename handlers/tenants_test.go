package handlers

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

const (
	reqSubj       = "t.requests"
	contosoEntra  = "6f1c2b9e-0000-4000-8000-000000000001"
	fabrikamEntra = "6f1c2b9e-0000-4000-8000-000000000002"
)

// tenantLookups answers every alert with the tenant's own domain and
// records which tenant was asked for which alert.
type tenantLookups struct {
	mu    sync.Mutex
	calls []string
}

func (l *tenantLookups) build(t *config.Tenant) (tenants.Lookup, error) {
	name := t.Name
	return lookupFunc(func(ctx context.Context, id string) (connector.Result, error) {
		l.mu.Lock()
		l.calls = append(l.calls, name+"/"+id)
		l.mu.Unlock()
		return connector.Result{Domains: []string{name + ".example"}, Attempts: 1}, nil
	}), nil
}

func (l *tenantLookups) taken() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := slices.Clone(l.calls)
	l.calls = nil
	return c
}

// tenantService is a Service for the tenants named, with a result stream
// that captures the per-tenant result subjects and a result cache.
func tenantService(t *testing.T, names ...string) (*Service, jetstream.Stream, *tenantLookups) {
	svc, st, lookups, _ := tenantServices(t, names...)
	return svc, st, lookups
}

// tenantServices is tenantService, and a function that starts another
// replica of it on the same streams, with a cache of its own.
func tenantServices(t *testing.T, names ...string) (*Service, jetstream.Stream, *tenantLookups, func() *Service) {
	t.Helper()
	js, st := jetStream(t)
	cfg := st.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, successSubj+".*", failureSubj+".*")
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	entra := map[string]string{"contoso": contosoEntra, "fabrikam": fabrikamEntra, "default": "6f1c2b9e-0000-4000-8000-000000000003"}
	var list []config.Tenant
	for _, n := range names {
		list = append(list, config.Tenant{Name: n, Credential: connector.CredentialConfig{TenantID: entra[n]}})
	}
	lookups := &tenantLookups{}
	set, err := tenants.New(list, lookups.build)
	if err != nil {
		t.Fatal(err)
	}
	svc := tenantReplica(t, js, cfg.Name, set)
	return svc, st, lookups, func() *Service { return tenantReplica(t, js, cfg.Name, set) }
}

// tenantReplica is one replica's Service for set: its own result cache,
// read from the result stream.
func tenantReplica(t *testing.T, js jetstream.JetStream, stream string, set *tenants.Set) *Service {
	t.Helper()
	cache := NewResultCache(js, stream, successSubj, time.Hour, testCacheOpts()...)
	runCache(t, cache)
	waitReady(t, cache)
	svc, err := New(nil, js, successSubj, failureSubj, WithTenants(set, reqSubj, ""), WithCache(cache), WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestHandleRoutesByTenant: a request names its tenant by subject, by a
// tenant field or by its alert's Entra tenantId; it is looked up with that
// tenant's lookup, its result carries the tenant (field and header) and goes
// to the tenant's own subject when the request named it. Names that
// disagree are invalid_request; a tenant that is not configured is
// unknown_tenant, acknowledged.
func TestHandleRoutesByTenant(t *testing.T) {
	tests := []struct {
		name, subject, body string
		tenants             []string
		wantAction          consumer.Action
		wantSubject         string
		wantTenant          string
		wantKind            message.Kind
		wantCalls           []string
	}{
		{name: "by subject", subject: reqSubj + ".contoso", body: "a1", tenants: []string{"contoso", "fabrikam"},
			wantAction: consumer.Ack, wantSubject: successSubj + ".contoso", wantTenant: "contoso", wantCalls: []string{"contoso/a1"}},
		{name: "by tenant field", subject: reqSubj, body: `{"alertId":"a1","tenant":"fabrikam"}`, tenants: []string{"contoso", "fabrikam"},
			wantAction: consumer.Ack, wantSubject: successSubj + ".fabrikam", wantTenant: "fabrikam", wantCalls: []string{"fabrikam/a1"}},
		{name: "by the alert's tenantId", subject: reqSubj, body: `{"id":"a1","tenantId":"` + fabrikamEntra + `"}`, tenants: []string{"contoso", "fabrikam"},
			wantAction: consumer.Ack, wantSubject: successSubj + ".fabrikam", wantTenant: "fabrikam", wantCalls: []string{"fabrikam/a1"}},
		{name: "subject and field agree", subject: reqSubj + ".contoso", body: `{"alertId":"a1","tenant":"contoso"}`, tenants: []string{"contoso", "fabrikam"},
			wantAction: consumer.Ack, wantSubject: successSubj + ".contoso", wantTenant: "contoso", wantCalls: []string{"contoso/a1"}},
		{name: "named by none goes to default on the plain subject", subject: reqSubj, body: "a1", tenants: []string{"contoso", "default"},
			wantAction: consumer.Ack, wantSubject: successSubj, wantTenant: "default", wantCalls: []string{"default/a1"}},
		{name: "subject and field disagree", subject: reqSubj + ".contoso", body: `{"alertId":"a1","tenant":"fabrikam"}`, tenants: []string{"contoso", "fabrikam"},
			wantAction: consumer.Terminate, wantSubject: failureSubj + ".contoso", wantTenant: "contoso", wantKind: message.KindInvalidRequest},
		{name: "field and tenantId disagree", subject: reqSubj, body: `{"id":"a1","tenant":"contoso","tenantId":"` + fabrikamEntra + `"}`, tenants: []string{"contoso", "fabrikam"},
			wantAction: consumer.Terminate, wantSubject: failureSubj, wantKind: message.KindInvalidRequest},
		{name: "tenant field not a string", subject: reqSubj + ".contoso", body: `{"alertId":"a1","tenant":7}`, tenants: []string{"contoso"},
			wantAction: consumer.Terminate, wantSubject: failureSubj + ".contoso", wantTenant: "contoso", wantKind: message.KindInvalidRequest},
		{name: "subject names a tenant not configured", subject: reqSubj + ".initech", body: "a1", tenants: []string{"contoso", "default"},
			wantAction: consumer.Ack, wantSubject: failureSubj, wantKind: message.KindUnknownTenant},
		{name: "field names a tenant not configured", subject: reqSubj, body: `{"alertId":"a1","tenant":"initech"}`, tenants: []string{"contoso", "default"},
			wantAction: consumer.Ack, wantSubject: failureSubj, wantKind: message.KindUnknownTenant},
		{name: "names none and no default", subject: reqSubj, body: "a1", tenants: []string{"contoso"},
			wantAction: consumer.Ack, wantSubject: failureSubj, wantKind: message.KindUnknownTenant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, st, lookups := tenantService(t, tt.tenants...)
			out := svc.Handle(t.Context(), &consumer.Delivery{Subject: tt.subject, Data: []byte(tt.body), Stream: "REQ", StreamSeq: 5, NumDelivered: 1, MaxDeliver: 10})
			if out.Action != tt.wantAction || !out.Stored {
				t.Fatalf("outcome %v stored=%v err=%v, want %v stored", out.Action, out.Stored, out.Err, tt.wantAction)
			}
			if got := lookups.taken(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("lookups %v, want %v", got, tt.wantCalls)
			}
			msgs := stored(t, st)
			if len(msgs) != 1 {
				t.Fatalf("%d results stored, want 1", len(msgs))
			}
			m := msgs[0]
			var r message.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.wantSubject || r.Tenant != tt.wantTenant || m.Header.Get(message.HeaderTenant) != tt.wantTenant || r.Kind() != tt.wantKind {
				t.Errorf("result on %s tenant %q (header %q) kind %q, want %s tenant %q kind %q: %s",
					m.Subject, r.Tenant, m.Header.Get(message.HeaderTenant), r.Kind(), tt.wantSubject, tt.wantTenant, tt.wantKind, m.Data)
			}
			if tt.wantTenant == "" && m.Header.Get(message.HeaderTenant) != "" {
				t.Errorf("Tenant header %q on a result without a tenant", m.Header.Get(message.HeaderTenant))
			}
		})
	}
}

// TestHandleCachePerTenant: an alert cached for one tenant is never the
// answer for another; each tenant asked again is answered from its own
// entry.
func TestHandleCachePerTenant(t *testing.T) {
	svc, st, lookups, replica := tenantServices(t, "contoso", "fabrikam")
	seq := uint64(0)
	ask := func(tenant string) message.Result {
		t.Helper()
		seq++
		out := svc.Handle(t.Context(), &consumer.Delivery{Subject: reqSubj + "." + tenant, Data: []byte("same-alert"), Stream: "REQ", StreamSeq: seq, NumDelivered: 1, MaxDeliver: 10})
		if out.Action != consumer.Ack || !out.Stored {
			t.Fatalf("%s: %v (%v)", tenant, out.Action, out.Err)
		}
		return *out.Result
	}
	for round, wantCached := range []bool{false, true} {
		for _, tenant := range []string{"contoso", "fabrikam"} {
			r := ask(tenant)
			if !slices.Equal(r.Domains, []string{tenant + ".example"}) || r.Cached == nil || *r.Cached != wantCached || r.Tenant != tenant {
				t.Errorf("round %d, %s: domains %v cached %v tenant %q", round, tenant, r.Domains, *r.Cached, r.Tenant)
			}
		}
	}
	if got := lookups.taken(); !slices.Equal(got, []string{"contoso/same-alert", "fabrikam/same-alert"}) {
		t.Errorf("lookups %v, want one per tenant", got)
	}
	if n := len(stored(t, st)); n != 4 {
		t.Errorf("%d results stored, want 4", n)
	}

	// Another replica, started now, reads each tenant's entry from the
	// stored results: asked for both, it makes no call.
	svc = replica()
	for _, tenant := range []string{"contoso", "fabrikam"} {
		if r := ask(tenant); r.Cached == nil || !*r.Cached || !slices.Equal(r.Domains, []string{tenant + ".example"}) {
			t.Errorf("another replica, %s: domains %v cached %v", tenant, r.Domains, r.Cached)
		}
	}
	if got := lookups.taken(); len(got) != 0 {
		t.Errorf("another replica made lookups %v, want none", got)
	}
}
