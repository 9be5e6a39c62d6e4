package metrics

import (
	"errors"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

// Family is one metric of the service, as the metrics reference lists it.
type Family struct {
	Name, Type, Help string
	Labels           []string
}

// Families lists every alert_domains_* metric a serve can export, by name:
// those of New and of the optional collectors, read from a registry that
// has them all, each with one tenant so that every vector has a series.
func Families() ([]Family, error) {
	m := New()
	_, reloadsErr := m.TenantsReloads()
	_, sharedErr := m.SharedQuota()
	m.SetTenants(map[string]connector.API{"default": connector.Graph})
	oneLimit := connector.NewLimiter([]connector.Limit{{Count: 1, Window: time.Minute}})
	if err := errors.Join(reloadsErr, sharedErr, m.WatchQuota(func(string) Quota { return oneLimit })); err != nil {
		return nil, err
	}
	gathered, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	var out []Family
	for _, f := range gathered {
		if !strings.HasPrefix(f.GetName(), namespace+"_") {
			continue
		}
		fam := Family{Name: f.GetName(), Type: strings.ToLower(f.GetType().String()), Help: f.GetHelp()}
		for _, l := range f.GetMetric()[0].GetLabel() {
			fam.Labels = append(fam.Labels, l.GetName())
		}
		out = append(out, fam)
	}
	return out, nil
}
