package handlers

import (
	"context"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// Tenants are the tenants a service serves (a tenants.Router): it finds
// the tenant a request names and asks that tenant's API, with the
// tenant's own credential and quota.
type Tenants interface {
	// Resolve returns the tenant of a request from the tenant token of its
	// subject, its "tenant" field and its alert's Entra tenant ID (each may
	// be empty). named reports whether the request named it (its results
	// then go to the tenant's own subjects). Errors are *message.Error of
	// kind unknown_tenant, or invalid_request when two names disagree.
	Resolve(subjectTenant, bodyTenant, entraTenantID string) (tenant string, named bool, err error)
	// Domains asks the API of tenant for the domains of an alert.
	Domains(ctx context.Context, tenant, alertID string) (connector.Result, error)
	// API is the Microsoft API that answers for tenant.
	API(tenant string) connector.API
}

// route is where a request goes: its tenant, whether it named it, and the
// tenant's API.
type route struct {
	tenant string
	named  bool
	api    connector.API
}

// routes decodes requests and finds their tenant.
type routes struct {
	tenants  Tenants
	subjects message.Subjects
}

// request decodes d and finds its tenant. A request that cannot be
// decoded or routed gets the route of its failure (fallback) and the
// reason.
func (r routes) request(d *consumer.Delivery) (message.Request, route, error) {
	req, err := message.Decode(d.Data, d.Header)
	if err != nil {
		return req, r.fallback(d.Subject), err
	}
	subject, _ := r.subjects.Tenant(d.Subject)
	name, named, err := r.tenants.Resolve(subject, req.Tenant, req.EntraTenantID)
	if err != nil {
		return req, r.fallback(d.Subject), err
	}
	return req, route{tenant: name, named: named, api: r.tenants.API(name)}, nil
}

// fallback is where the failure of a request that cannot be routed goes:
// to the tenant its subject names when that tenant is configured (the
// subject is what NATS permissions allow a customer to publish to), and
// otherwise to the plain subjects, without a tenant.
func (r routes) fallback(subject string) route {
	name, _ := r.subjects.Tenant(subject)
	if name == "" {
		return route{}
	}
	if t, named, err := r.tenants.Resolve(name, "", ""); err == nil {
		return route{tenant: t, named: named, api: r.tenants.API(t)}
	}
	return route{}
}

// resultSubject is the subject of res for a request routed to rt.
func (r routes) resultSubject(rt route, res *message.Result) string {
	subject := r.subjects.Failure
	if res.Status == message.StatusSuccess {
		subject = r.subjects.Success
	}
	if rt.named && rt.tenant != "" {
		subject += "." + rt.tenant
	}
	return subject
}

// cacheKey is the key of alertID's entry in the cache for rt.
func (r routes) cacheKey(rt route, alertID string) string {
	return CacheKey(r.subjects.Plain, rt.tenant, rt.api, alertID)
}
