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

var clouds = [...]Cloud{
	{
		Name:          "public",
		AuthorityHost: "https://login.microsoftonline.com/",
		graphURL:      "https://graph.microsoft.com",
		mdeURL:        "https://api.securitycenter.microsoft.com",
	},
	{
		Name:          "gcc",
		AuthorityHost: "https://login.microsoftonline.com/",
		graphURL:      "https://graph.microsoft.com",
		mdeURL:        "https://api-gcc.securitycenter.microsoft.us",
	},
	{
		Name:          "gcc-high",
		AuthorityHost: "https://login.microsoftonline.us/",
		graphURL:      "https://graph.microsoft.us",
		mdeURL:        "https://api-gov.securitycenter.microsoft.us",
	},
	{
		Name:          "dod",
		AuthorityHost: "https://login.microsoftonline.us/",
		graphURL:      "https://dod-graph.microsoft.us",
		mdeURL:        "https://api-gov.securitycenter.microsoft.us",
	},
}

// CloudByName returns the cloud called name: public, gcc, gcc-high or dod.
func CloudByName(name string) (Cloud, error) {
	if i := slices.IndexFunc(clouds[:], func(c Cloud) bool { return c.Name == name }); i >= 0 {
		return clouds[i], nil
	}
	return Cloud{}, fmt.Errorf("%w: unknown cloud %q (use public, gcc, gcc-high or dod)", ErrConfig, name)
}
