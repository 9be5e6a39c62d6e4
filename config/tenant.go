package config

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/alert-domains/alert-domains/connector"
)

// DefaultTenant is the environment's tenant, and the one that serves requests naming none.
const DefaultTenant = "default"

// Tenant is one customer tenant, resolved, with its credential read.
type Tenant struct {
	Name             string
	API              connector.API
	Cloud            string
	APIURL           string
	Scope            string
	RateLimits       []connector.Limit
	Credential       connector.CredentialConfig // holds the secret: never logged
	CredentialSource string                     // for logs: "clientSecretFile /run/secrets/contoso"
	Files            map[string][32]byte        // the credential files it was read from: changed, they make another tenant
	Environment      bool                       // the AZURE_* variables' tenant, not the file's
}

// spec is one tenant as configured, before the defaults.
type spec struct {
	api, cloud, apiURL, scope, authority, rateLimits string
	tenantID, clientID                               string

	requireTenantID bool         // a file's tenant routes alerts by it
	credentials     []credential // the source's, in its order
	password        credential   // of the certificate
}

// credential is one way to give a credential: load puts it in place.
type credential struct {
	field   string
	set     bool
	managed bool
	load    func() error
}

// byValue gives v (the environment's secret); byFile, the path of a file
// another part reads; fromFile, the secret read from the file at path.
func byValue(field, v string, dst *string) credential {
	return credential{field: field, set: v != "", load: func() error { *dst = v; return nil }}
}

func byFile(field, path string, dst *string) credential {
	return credential{field: field, set: path != "", load: func() error { *dst = path; return checkFile(path) }}
}

func fromFile(field, path string, dst *string) credential {
	return credential{field: field, set: path != "", load: func() (err error) { *dst, err = readSecretFile(path); return err }}
}

type names struct{ api, cloud, apiURL, scope, authority, rateLimits, tenantID, clientID, certificate string }

var envNames = names{"DEFENDER_API", "DEFENDER_CLOUD", "DEFENDER_API_URL", "DEFENDER_SCOPE", "AZURE_AUTHORITY_HOST",
	"DEFENDER_RATE_LIMITS", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"}

// fieldError is a mistake in one part of a spec, without its value.
type fieldError struct{ field, reason string }

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

var (
	guidPattern   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainPattern = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$`)
)

// IsGUID reports whether an Entra tenant ID is a GUID, not a domain name.
func IsGUID(id string) bool { return guidPattern.MatchString(id) }

// endpoint resolves a tenant's API side: a part s leaves empty takes d's
// (the URL and scope only for d's API), else the API's and cloud's default.
func endpoint(s, d *spec, n *names) (Tenant, error) {
	api, err := connector.ParseAPI(cmp.Or(s.api, d.api))
	if err != nil {
		return Tenant{}, &fieldError{n.api, "is not graph or mde"}
	}
	t := Tenant{API: api, Cloud: cmp.Or(s.cloud, d.cloud)}
	cloud, err := connector.CloudByName(t.Cloud)
	if err != nil {
		return Tenant{}, &fieldError{n.cloud, "is not one of public, gcc, gcc-high, dod"}
	}
	apiURL, scope := cloud.APIURL(api), cloud.Scope(api)
	if string(api) == d.api {
		apiURL, scope = cmp.Or(d.apiURL, apiURL), cmp.Or(d.scope, scope)
	}
	t.APIURL, t.Scope = cmp.Or(s.apiURL, apiURL), cmp.Or(s.scope, scope)
	t.Credential.AuthorityHost = cmp.Or(s.authority, d.authority, cloud.AuthorityHost)
	for _, u := range []struct{ field, url string }{{n.apiURL, t.APIURL}, {n.authority, t.Credential.AuthorityHost}} {
		if p, err := url.Parse(u.url); err != nil || p.Scheme != "https" || p.Host == "" || p.User != nil || p.RawQuery != "" || p.Fragment != "" {
			return Tenant{}, &fieldError{u.field, "must be an https URL without credentials, query or fragment (the value is not shown)"}
		}
	}
	if !validScope(t.Scope) {
		return Tenant{}, &fieldError{n.scope, "is not a scope such as https://graph.microsoft.com/.default (the value is not shown)"}
	}
	if t.RateLimits, err = connector.ParseLimits(cmp.Or(s.rateLimits, d.rateLimits, api.DefaultRateLimits())); err != nil {
		return Tenant{}, &fieldError{n.rateLimits, fmt.Sprintf("is not none or count/window pairs, comma separated, such as 100/1m,1500/1h, each count from 1 to %d (the value is not shown)", connector.MaxLimitCount)}
	}
	return t, nil
}

// register checks an app registration (one credential; IDs unless a managed
// identity goes without), loads the credential and returns its field.
func register(s *spec, n *names, c *connector.CredentialConfig) (source string, err error) {
	var chosen, fields []string
	var one credential
	for _, o := range s.credentials {
		if fields = append(fields, o.field); o.set {
			chosen, one = append(chosen, o.field), o
		}
	}
	switch {
	case len(chosen) == 0:
		return "", &fieldError{"credential", "none: set exactly one of " + strings.Join(fields, ", ")}
	case len(chosen) > 1:
		return "", &fieldError{chosen[1], fmt.Sprintf("more than one credential (%s): set exactly one", strings.Join(chosen, ", "))}
	case s.password.set && one.field != n.certificate:
		return "", &fieldError{s.password.field, "goes with " + n.certificate}
	case s.tenantID == "" && (s.requireTenantID || !one.managed):
		return "", &fieldError{n.tenantID, "is missing"}
	case s.tenantID != "" && !IsGUID(s.tenantID) && !domainPattern.MatchString(s.tenantID):
		return "", &fieldError{n.tenantID, "is not a GUID or a domain name (the value is not shown)"}
	case s.clientID == "" && !one.managed:
		return "", &fieldError{n.clientID, "is missing"}
	case s.clientID != "" && !IsGUID(s.clientID):
		return "", &fieldError{n.clientID, "is not a GUID (the value is not shown)"}
	}
	c.TenantID, c.ClientID, c.ManagedIdentity = s.tenantID, s.clientID, one.managed
	for _, o := range []credential{one, s.password} {
		if o.set && !o.managed {
			if err := o.load(); err != nil {
				return "", &fieldError{o.field, err.Error()}
			}
		}
	}
	return one.field, nil
}

func (m *Microsoft) resolve() error {
	m.explicit = spec{api: m.DefenderAPI, cloud: m.DefenderCloud, apiURL: m.DefenderAPIURL, scope: m.DefenderScope,
		authority: m.AzureAuthorityHost, rateLimits: m.DefenderRateLimits}
	t, err := endpoint(&m.explicit, &m.explicit, &envNames)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m.API, m.RateLimits = t.API, t.RateLimits
	m.DefenderAPIURL, m.DefenderScope, m.AzureAuthorityHost = t.APIURL, t.Scope, t.Credential.AuthorityHost
	m.DefenderRateLimits = cmp.Or(m.DefenderRateLimits, t.API.DefaultRateLimits())
	return firstBroken(
		rule{"DEFENDER_TIMEOUT", m.DefenderTimeout <= 0, "must be more than 0"},
		rule{"RETRY_INITIAL_INTERVAL", m.RetryInitialInterval <= 0, "must be more than 0"},
		rule{"RETRY_MAX_INTERVAL", m.RetryMaxInterval < m.RetryInitialInterval, "must not be shorter than RETRY_INITIAL_INTERVAL"},
		rule{"RETRY_MAX_ELAPSED", m.RetryMaxElapsed <= 0, "must be more than 0"},
		rule{"QUOTA_SCOPE", m.QuotaScope != "shared" && m.QuotaScope != "process", fmt.Sprintf("%q is not shared or process", m.QuotaScope)},
	)
}

// EnvironmentTenant is the tenant "default" of the AZURE_* variables; with
// its error comes the tenant, for status.
func (c *Config) EnvironmentTenant() (Tenant, error) {
	m := &c.Microsoft
	t, _ := endpoint(&m.explicit, &m.explicit, &envNames) // checked by Load
	t.Name, t.Environment = DefaultTenant, true
	cred := &t.Credential
	s := spec{tenantID: m.AzureTenantID, clientID: m.AzureClientID,
		credentials: []credential{
			byValue("AZURE_CLIENT_SECRET", m.AzureClientSecret.Reveal(), &cred.ClientSecret),
			byFile("AZURE_CLIENT_CERTIFICATE_PATH", m.AzureClientCertificatePath, &cred.CertificatePath),
			byFile("AZURE_FEDERATED_TOKEN_FILE", m.AzureFederatedTokenFile, &cred.FederatedTokenFile),
			{field: "DEFENDER_MANAGED_IDENTITY", set: m.DefenderManagedIdentity, managed: true},
		},
		password: byValue("AZURE_CLIENT_CERTIFICATE_PASSWORD", m.AzureClientCertificatePassword.Reveal(), &cred.CertificatePassword),
	}
	source, err := register(&s, &envNames, cred)
	if err != nil {
		return t, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	t.CredentialSource = source
	return t, nil
}

// validScope reports whether s is <URL or application ID>/.default.
func validScope(s string) bool {
	resource, ok := strings.CutSuffix(s, "/.default")
	if !ok || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	u, err := url.Parse(resource)
	return err == nil && u.User == nil && (u.Host != "" || IsGUID(resource))
}
