package connector

import (
	"fmt"
	"slices"
)

// Cloud is where one Microsoft cloud serves each API and Entra ID.
type Cloud struct {
	Name          string // public, gcc, gcc-high or dod
	AuthorityHost string // Entra ID host, with a trailing slash
	graphURL      string
	mdeURL        string
}

// APIURL is the base of api in the cloud.
func (c Cloud) APIURL(api API) string {
	if api == MDE {
		return c.mdeURL
	}
	return c.graphURL
}

// Scope is the token scope of api in the cloud: its base's /.default.
func (c Cloud) Scope(api API) string { return c.APIURL(api) + "/.default" }

// clouds holds each cloud's name, Entra host, Graph base and endpoint API base.
var clouds = [...]Cloud{
	{"public", "https://login.microsoftonline.com/", "https://graph.microsoft.com", "https://api.securitycenter.microsoft.com"},
	{"gcc", "https://login.microsoftonline.com/", "https://graph.microsoft.com", "https://api-gcc.securitycenter.microsoft.us"},
	{"gcc-high", "https://login.microsoftonline.us/", "https://graph.microsoft.us", "https://api-gov.securitycenter.microsoft.us"},
	{"dod", "https://login.microsoftonline.us/", "https://dod-graph.microsoft.us", "https://api-gov.securitycenter.microsoft.us"},
}

// CloudByName returns the cloud called name: public, gcc, gcc-high or dod.
func CloudByName(name string) (Cloud, error) {
	if i := slices.IndexFunc(clouds[:], func(c Cloud) bool { return c.Name == name }); i >= 0 {
		return clouds[i], nil
	}
	return Cloud{}, fmt.Errorf("%w: unknown cloud %q (use public, gcc, gcc-high or dod)", ErrConfig, name)
}
