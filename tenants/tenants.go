// Package tenants finds the tenant a request names and routes its lookup to
// that tenant's own Defender client.
package tenants

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// Lookup asks one tenant's Defender (a *connector.Client).
type Lookup interface {
	Domains(ctx context.Context, alertID string) (connector.Result, error)
}

// Build makes the lookup of one tenant.
type Build func(t *config.Tenant) (Lookup, error)

// Set is the tenants a process serves, each with its lookup. It is
// immutable: a reload builds a new one.
type Set struct {
	list      []config.Tenant
	lookups   []Lookup
	byName    map[string]int
	byEntraID map[string][]int
}

// New builds the lookup of every tenant in list, whose names are unique.
func New(list []config.Tenant, build Build) (*Set, error) {
	list = slices.Clone(list)
	s := &Set{list: list, lookups: make([]Lookup, len(list)), byName: make(map[string]int, len(list)),
		byEntraID: make(map[string][]int, len(list))}
	for i := range list {
		t := &list[i]
		l, err := build(t)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		s.lookups[i], s.byName[t.Name] = l, i
		id := strings.ToLower(t.Credential.TenantID)
		s.byEntraID[id] = append(s.byEntraID[id], i)
	}
	return s, nil
}

// Names returns the tenants' names in the order of the list.
func (s *Set) Names() []string {
	names := make([]string, len(s.list))
	for i := range s.list {
		names[i] = s.list[i].Name
	}
	return names
}

// Get returns the tenant called name.
func (s *Set) Get(name string) (*config.Tenant, bool) {
	i, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return &s.list[i], true
}

// Lookup returns the lookup of the tenant called name.
func (s *Set) Lookup(name string) (Lookup, bool) {
	i, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return s.lookups[i], true
}

// Resolve finds the tenant of a request from its subject's tenant token, its
// body's "tenant" and its alert's Entra "tenantId" (any may be empty); named
// reports whether the request named it. Names that disagree are an
// invalid_request, a tenant not configured an unknown_tenant. An Entra ID no
// tenant has is served only by a tenant whose own ID is a domain name.
func (s *Set) Resolve(subjectTenant, bodyTenant, entraTenantID string) (tenant string, named bool, err error) {
	name := subjectTenant
	if bodyTenant != "" {
		if name != "" && name != bodyTenant {
			return "", true, conflict("the subject names tenant %q and the body %q", message.Printable(name, 64), message.Printable(bodyTenant, 64))
		}
		name = bodyTenant
	}
	var byID []int
	if entraTenantID != "" {
		byID = s.byEntraID[strings.ToLower(entraTenantID)]
	}
	i, ok := s.byName[cmp.Or(name, config.DefaultTenant)] // a request that names none goes to "default"
	switch {
	case name != "" && !ok:
		return "", true, unknown("%q is not configured", message.Printable(name, 64))
	case name == "" && len(byID) == 1:
		return s.list[byID[0]].Name, true, nil
	case name == "" && len(byID) > 1:
		return "", true, conflict("the alert's tenantId belongs to %d configured tenants; name one with the subject or a tenant field", len(byID))
	case name == "" && !ok:
		return "", false, unknown("the request names no tenant and no tenant is called %q", config.DefaultTenant)
	}
	t, named := &s.list[i], name != ""
	switch {
	case entraTenantID == "" || slices.Contains(byID, i):
		return t.Name, named, nil
	case len(byID) > 0:
		return "", true, conflict("tenant %q and the alert's tenantId of tenant %q", t.Name, s.list[byID[0]].Name)
	case !config.IsGUID(t.Credential.TenantID) && (named || t.Environment):
		return t.Name, named, nil
	}
	return "", named, unknown("the alert's tenantId is not the Entra tenant of any configured tenant")
}

func conflict(format string, args ...any) error {
	return &message.Error{Kind: message.KindInvalidRequest, Message: "conflicting tenants: " + fmt.Sprintf(format, args...)}
}

func unknown(format string, args ...any) error {
	return &message.Error{Kind: message.KindUnknownTenant, Message: "unknown tenant: " + fmt.Sprintf(format, args...)}
}

// Domains asks the Defender of the tenant called tenant.
func (s *Set) Domains(ctx context.Context, tenant, alertID string) (connector.Result, error) {
	l, ok := s.Lookup(tenant)
	if !ok {
		return connector.Result{}, unknown("%q is not configured", message.Printable(tenant, 64))
	}
	return l.Domains(ctx, alertID)
}

// API is the API that answers for the tenant called name, or "".
func (s *Set) API(name string) connector.API {
	if t, ok := s.Get(name); ok {
		return t.API
	}
	return ""
}

// Rebuild is New for a reloaded list: an unchanged tenant keeps its lookup.
func Rebuild(old *Set, list []config.Tenant, build Build) (*Set, error) {
	return New(list, func(t *config.Tenant) (Lookup, error) {
		if i, ok := old.byName[t.Name]; ok && reflect.DeepEqual(old.list[i], *t) {
			return old.lookups[i], nil
		}
		return build(t)
	})
}

// Router routes to the current Set, which a reload swaps whole.
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
