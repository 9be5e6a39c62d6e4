// Package tenants serves many customer tenants from one process: it finds
// the tenant a request names and routes the request's lookup to that
// tenant's own Defender client (its credential and token cache, API URL,
// scope, quota and cooldown), so that no tenant's traffic is answered with
// another's.
package tenants

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// Lookup asks one tenant's Defender for the domains of an alert (a
// *connector.Client).
type Lookup interface {
	Domains(ctx context.Context, alertID string) (connector.Result, error)
}

// Build makes the lookup of one tenant.
type Build func(t *config.Tenant) (Lookup, error)

// Set is the tenants a process serves, each with its lookup. It is
// immutable.
type Set struct {
	tenants *config.Tenants
	lookups map[string]Lookup
}

// New builds the lookup of every tenant in list (whose names are unique, as
// config.LoadTenants returns them). An error names the tenant.
func New(list []config.Tenant, build Build) (*Set, error) {
	s := &Set{tenants: config.NewTenants(list), lookups: make(map[string]Lookup, len(list))}
	for _, t := range s.tenants.All() {
		l, err := build(&t)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		s.lookups[t.Name] = l
	}
	return s, nil
}

// Tenants is the configured set.
func (s *Set) Tenants() *config.Tenants { return s.tenants }

// Lookup returns the lookup of the tenant called name.
func (s *Set) Lookup(name string) (Lookup, bool) {
	l, ok := s.lookups[name]
	return l, ok
}

// Resolve finds the tenant of a request (see config.Tenants.Resolve). A
// tenant that is not configured is an error of kind unknown_tenant; two
// names that disagree are invalid_request.
func (s *Set) Resolve(subjectTenant, bodyTenant, entraTenantID string) (string, bool, error) {
	t, named, err := s.tenants.Resolve(subjectTenant, bodyTenant, entraTenantID)
	switch {
	case errors.Is(err, config.ErrTenantConflict):
		return "", named, &message.Error{Kind: message.KindInvalidRequest, Message: err.Error()}
	case errors.Is(err, config.ErrUnknownTenant):
		return "", named, &message.Error{Kind: message.KindUnknownTenant, Message: err.Error()}
	case err != nil:
		return "", named, err
	}
	return t.Name, named, nil
}

// Domains asks the Defender of the tenant called tenant.
func (s *Set) Domains(ctx context.Context, tenant, alertID string) (connector.Result, error) {
	l, ok := s.lookups[tenant]
	if !ok {
		return connector.Result{}, &message.Error{Kind: message.KindUnknownTenant, Message: fmt.Sprintf("unknown tenant: %q is not configured", tenant)}
	}
	return l.Domains(ctx, alertID)
}

// API is the API that answers for the tenant called name ("" for a tenant
// not configured).
func (s *Set) API(name string) connector.API {
	if t, ok := s.tenants.Get(name); ok {
		return t.API
	}
	return ""
}

// Rebuild is New for a reloaded list: a tenant whose configuration is
// unchanged keeps its lookup from old (its token cache, quota and cooldown
// go on); a new or changed tenant gets one from build.
func Rebuild(old *Set, list []config.Tenant, build Build) (*Set, error) {
	return New(list, func(t *config.Tenant) (Lookup, error) {
		if prev, ok := old.tenants.Get(t.Name); ok && reflect.DeepEqual(*prev, *t) {
			return old.lookups[t.Name], nil
		}
		return build(t)
	})
}

// Router routes to the current Set, which a reload swaps whole: a request
// resolved and looked up while a reload happens uses one set or the other,
// and work in flight keeps the lookup it has.
type Router struct {
	cur atomic.Pointer[Set]
}

// NewRouter routes to s until Swap.
func NewRouter(s *Set) *Router {
	r := &Router{}
	r.cur.Store(s)
	return r
}

// Set is the current set.
func (r *Router) Set() *Set { return r.cur.Load() }

// Swap makes s the current set.
func (r *Router) Swap(s *Set) { r.cur.Store(s) }

// Resolve is Set.Resolve of the current set.
func (r *Router) Resolve(subjectTenant, bodyTenant, entraTenantID string) (string, bool, error) {
	return r.cur.Load().Resolve(subjectTenant, bodyTenant, entraTenantID)
}

// API is Set.API of the current set.
func (r *Router) API(name string) connector.API { return r.cur.Load().API(name) }

// Domains is Set.Domains of the current set.
func (r *Router) Domains(ctx context.Context, tenant, alertID string) (connector.Result, error) {
	return r.cur.Load().Domains(ctx, tenant, alertID)
}
