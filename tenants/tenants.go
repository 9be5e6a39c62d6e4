// Package tenants serves many customer tenants from one process: it finds
// the tenant a request names and routes the request's lookup to that
// tenant's own Defender client (its credential and token cache, API URL,
// scope, quota and cooldown), so that no tenant's traffic is answered with
// another's.
package tenants

import (
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

// Lookup asks one tenant's Defender for the domains of an alert (a
// *connector.Client).
type Lookup interface {
	Domains(ctx context.Context, alertID string) (connector.Result, error)
}

// Build makes the lookup of one tenant.
type Build func(t *config.Tenant) (Lookup, error)

// Set is the tenants a process serves, each with its lookup, found by name
// and by Entra tenant ID. It is immutable: a reload builds a new one.
type Set struct {
	list      []config.Tenant
	lookups   []Lookup
	byName    map[string]int
	byEntraID map[string][]int
	// unnamed serves requests that name no tenant: the tenant called
	// "default", or -1.
	unnamed int
}

// New builds the lookup of every tenant in list (whose names are unique, as
// config.LoadTenants returns them). An error names the tenant.
func New(list []config.Tenant, build Build) (*Set, error) {
	list = slices.Clone(list)
	s := &Set{list: list, lookups: make([]Lookup, len(list)), byName: make(map[string]int, len(list)),
		byEntraID: make(map[string][]int, len(list)), unnamed: -1}
	for i := range list {
		t := &list[i]
		l, err := build(t)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		s.lookups[i], s.byName[t.Name] = l, i
		id := strings.ToLower(t.Credential.TenantID)
		s.byEntraID[id] = append(s.byEntraID[id], i)
		if t.Name == config.DefaultTenant {
			s.unnamed = i
		}
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

// Resolve finds the tenant of a request from what names it: the tenant
// token of the subject it was published to (<REQUEST_SUBJECT>.<name>), the
// string "tenant" field of its JSON body, and the Entra "tenantId" of an
// alert object; any may be empty. named reports whether the request named
// its tenant (its results then go to the tenant's own subjects). Two names
// that disagree are an error of kind invalid_request; a tenant not
// configured, unknown_tenant.
//
// An Entra tenant ID names the configured tenant that has it. One that no
// tenant has is an unknown tenant, never served with another tenant's
// credential; only a tenant whose own ID is a domain name, which a GUID
// cannot be compared with, serves it, when the request names that tenant
// or it is the environment's one tenant. A request that names nothing goes
// to the tenant called "default", if there is one.
func (s *Set) Resolve(subjectTenant, bodyTenant, entraTenantID string) (tenant string, named bool, err error) {
	name := subjectTenant
	if bodyTenant != "" {
		if name != "" && name != bodyTenant {
			return "", true, conflict("the subject names tenant %q and the body %q", name, bodyTenant)
		}
		name = bodyTenant
	}
	var byID []int
	if entraTenantID != "" {
		byID = s.byEntraID[strings.ToLower(entraTenantID)]
	}
	i, ok := s.byName[name]
	switch {
	case name != "" && !ok:
		return "", true, unknown("%q is not configured", name)
	case name == "" && len(byID) == 1:
		return s.list[byID[0]].Name, true, nil
	case name == "" && len(byID) > 1:
		return "", true, conflict("the alert's tenantId belongs to %d configured tenants; name one with the subject or a tenant field", len(byID))
	case name == "" && s.unnamed < 0:
		return "", false, unknown("the request names no tenant and no tenant is called %q", config.DefaultTenant)
	case name == "":
		i = s.unnamed
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
		return connector.Result{}, unknown("%q is not configured", tenant)
	}
	return l.Domains(ctx, alertID)
}

// API is the API that answers for the tenant called name ("" for a tenant
// not configured).
func (s *Set) API(name string) connector.API {
	if t, ok := s.Get(name); ok {
		return t.API
	}
	return ""
}

// Rebuild is New for a reloaded list: a tenant whose configuration is
// unchanged keeps its lookup from old (its token cache, quota and cooldown
// go on); a new or changed tenant gets one from build.
func Rebuild(old *Set, list []config.Tenant, build Build) (*Set, error) {
	return New(list, func(t *config.Tenant) (Lookup, error) {
		if i, ok := old.byName[t.Name]; ok && reflect.DeepEqual(old.list[i], *t) {
			return old.lookups[i], nil
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
