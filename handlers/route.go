package handlers

import (
	"context"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// Tenants are the tenants a service serves (a tenants.Router).
type Tenants interface {
	Resolve(subjectTenant, bodyTenant, entraTenantID string) (tenant string, named bool, err error)
	Domains(ctx context.Context, tenant, alertID string) (connector.Result, error)
	API(tenant string) connector.API
}

// route is where a request goes.
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

// request decodes d and finds its tenant, or the fallback route and the reason.
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

// fallback routes a request that cannot be routed: to the configured tenant
// its subject names (what NATS permissions check), else to no tenant.
func (r routes) fallback(subject string) route {
	if name, _ := r.subjects.Tenant(subject); name != "" {
		if t, named, err := r.tenants.Resolve(name, "", ""); err == nil {
			return route{tenant: t, named: named, api: r.tenants.API(t)}
		}
	}
	return route{}
}

// resultSubject is where res, the result of a request routed to rt, is stored.
func (r routes) resultSubject(rt route, res *message.Result) string {
	subject := res.Subject(r.subjects.Success, r.subjects.Failure)
	if rt.named && rt.tenant != "" {
		subject += "." + rt.tenant
	}
	return subject
}
