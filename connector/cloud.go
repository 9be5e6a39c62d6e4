package connector

import "fmt"

// Cloud is where one Microsoft cloud serves the Defender API and Entra ID.
type Cloud struct {
	Name          string // public, gcc, gcc-high or dod
	APIURL        string // Defender API base
	AuthorityHost string // Entra ID host, with a trailing slash
	Scope         string // token scope of the Defender API
}

// The clouds. Microsoft documents the API bases and the authorities; it does
// not document the scopes of the government clouds, so these use the form
// "{API base}/.default" that peers use (DEFENDER_SCOPE overrides it).
var clouds = [...]Cloud{
	{
		Name:          "public",
		APIURL:        "https://api.securitycenter.microsoft.com",
		AuthorityHost: "https://login.microsoftonline.com/",
		Scope:         "https://api.securitycenter.microsoft.com/.default",
	},
	{
		Name:          "gcc",
		APIURL:        "https://api-gcc.securitycenter.microsoft.us",
		AuthorityHost: "https://login.microsoftonline.com/",
		Scope:         "https://api-gcc.securitycenter.microsoft.us/.default",
	},
	{
		Name:          "gcc-high",
		APIURL:        "https://api-gov.securitycenter.microsoft.us",
		AuthorityHost: "https://login.microsoftonline.us/",
		Scope:         "https://api-gov.securitycenter.microsoft.us/.default",
	},
	{
		Name:          "dod",
		APIURL:        "https://api-gov.securitycenter.microsoft.us",
		AuthorityHost: "https://login.microsoftonline.us/",
		Scope:         "https://api-gov.securitycenter.microsoft.us/.default",
	},
}

// CloudByName returns the cloud called name: public, gcc, gcc-high or dod.
func CloudByName(name string) (Cloud, error) {
	for _, c := range clouds {
		if c.Name == name {
			return c, nil
		}
	}
	return Cloud{}, fmt.Errorf("%w: unknown cloud %q (use public, gcc, gcc-high or dod)", ErrConfig, name)
}
