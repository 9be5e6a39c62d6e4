package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/alert-domains/alert-domains/connector"
)

// DefaultTenant is the name of the tenant that the AZURE_* variables form
// when there is no TENANTS_FILE, and the tenant that serves requests that
// name none when the file has a tenant of that name.
const DefaultTenant = "default"

// Tenant is one customer tenant: its app registration, its credential
// (resolved: a secret read from its file or variable), its cloud and its
// quota.
type Tenant struct {
	Name       string
	API        connector.API
	Cloud      string
	APIURL     string
	Scope      string
	RateLimits []connector.Limit
	// Credential is ready for connector.NewCredential; it holds the secret
	// itself, so it is never logged or printed.
	Credential connector.CredentialConfig
	// CredentialSource says where the credential comes from, for logs:
	// "clientSecretFile /run/secrets/contoso", never the secret.
	CredentialSource string
}

// Registration identifies the quota the tenant spends: Microsoft counts
// calls per API, application and tenant, in one cloud.
func (t *Tenant) Registration() string {
	return string(t.API) + "/" + t.Cloud + "/" + t.Credential.TenantID + "/" + t.Credential.ClientID
}

// tenantFile is the YAML document of TENANTS_FILE.
type tenantFile struct {
	Tenants []json.RawMessage `json:"tenants"`
}

// tenantEntry is one element of tenants:. Each field is optional here;
// validation says which are required.
type tenantEntry struct {
	Name                    string `json:"name"`
	TenantID                string `json:"tenantId"`
	ClientID                string `json:"clientId"`
	ClientSecretFile        string `json:"clientSecretFile"`
	ClientSecretEnv         string `json:"clientSecretEnv"`
	CertificateFile         string `json:"certificateFile"`
	CertificatePasswordFile string `json:"certificatePasswordFile"`
	FederatedTokenFile      string `json:"federatedTokenFile"`
	ManagedIdentity         bool   `json:"managedIdentity"`
	API                     string `json:"api"`
	Cloud                   string `json:"cloud"`
	APIURL                  string `json:"apiUrl"`
	Scope                   string `json:"scope"`
	AuthorityHost           string `json:"authorityHost"`
	RateLimits              string `json:"rateLimits"`
}

// tenantFields are the keys a tenant may have, in the order errors check them.
var tenantFields = []string{
	"name", "tenantId", "clientId",
	"clientSecretFile", "clientSecretEnv", "certificateFile", "certificatePasswordFile",
	"federatedTokenFile", "managedIdentity",
	"api", "cloud", "apiUrl", "scope", "authorityHost", "rateLimits",
}

// inlineSecretFields are keys that would carry a secret in the file itself.
// They are refused with a hint, and their value is never shown.
var inlineSecretFields = map[string]string{
	"clientSecret":        "clientSecretFile or clientSecretEnv",
	"secret":              "clientSecretFile or clientSecretEnv",
	"password":            "certificatePasswordFile",
	"certificatePassword": "certificatePasswordFile",
	"certificate":         "certificateFile",
	"federatedToken":      "federatedTokenFile",
	"token":               "federatedTokenFile",
}

var (
	tenantNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	guidPattern       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainPattern     = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$`)
	envNamePattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidTenantName reports whether name can name a tenant: it is a subject
// token, a metric label value and a result field, so it is lower-case
// letters, digits and '-', 1 to 63 characters, not starting with '-'.
func ValidTenantName(name string) bool { return tenantNamePattern.MatchString(name) }

// TenantsError is a mistake in TENANTS_FILE: it names the tenant (or its
// position when it has no valid name) and the field. It never holds a value
// that could be a secret.
type TenantsError struct {
	File   string
	Tenant string // the tenant's name, or "" before a name could be read
	Index  int    // position in tenants:, from 0; -1 for the file as a whole
	Field  string
	Reason string
}

func (e *TenantsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "TENANTS_FILE %s", e.File)
	switch {
	case e.Index < 0:
	case e.Tenant != "":
		fmt.Fprintf(&b, ": tenant %q (tenants[%d])", e.Tenant, e.Index)
	default:
		fmt.Fprintf(&b, ": tenants[%d]", e.Index)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	return b.String()
}

// Unwrap makes every TenantsError a configuration error (exit status 2).
func (e *TenantsError) Unwrap() error { return ErrInvalid }

// LoadTenants reads the tenants file at path. The defaults of every tenant
// come from c (DEFENDER_CLOUD, DEFENDER_API_URL, DEFENDER_SCOPE,
// AZURE_AUTHORITY_HOST, DEFENDER_RATE_LIMITS); a default that lookup reports
// as unset follows the tenant's own cloud. lookup also resolves
// clientSecretEnv. Every secret is read now, so a missing file or variable
// is an error at load, not at the first request.
func LoadTenants(path string, c *Config, lookup Lookup) ([]Tenant, error) {
	fileErr := func(reason string, args ...any) error {
		return &TenantsError{File: path, Index: -1, Reason: fmt.Sprintf(reason, args...)}
	}
	for _, v := range []struct {
		key string
		set bool
	}{
		{"AZURE_TENANT_ID", c.AzureTenantID != ""},
		{"AZURE_CLIENT_ID", c.AzureClientID != ""},
		{"AZURE_CLIENT_SECRET", c.AzureClientSecret != ""},
		{"AZURE_CLIENT_CERTIFICATE_PATH", c.AzureClientCertificatePath != ""},
		{"AZURE_CLIENT_CERTIFICATE_PASSWORD", c.AzureClientCertificatePassword != ""},
		{"AZURE_FEDERATED_TOKEN_FILE", c.AzureFederatedTokenFile != ""},
		{"DEFENDER_MANAGED_IDENTITY", c.DefenderManagedIdentity},
	} {
		if v.set {
			return nil, fileErr("%s is set as well: with a tenants file every app registration and credential is in the file", v.key)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr("cannot be read: %v", unwrapPathError(err))
	}
	// YAMLToJSONStrict refuses duplicate keys; its errors name a line,
	// never quote the document (which could hold an inline secret).
	doc, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fileErr("not valid YAML: %v", yamlReason(err))
	}
	var f tenantFile
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fileErr("%v (the file is a map with the one key tenants: a list of tenants)", jsonReason(err))
	}
	if len(f.Tenants) == 0 {
		return nil, fileErr("tenants: lists no tenant")
	}
	tenants := make([]Tenant, 0, len(f.Tenants))
	seen := make(map[string]int, len(f.Tenants))
	for i, raw := range f.Tenants {
		t, err := loadTenant(path, i, raw, c, lookup)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[t.Name]; dup {
			return nil, &TenantsError{File: path, Tenant: t.Name, Index: i, Field: "name",
				Reason: fmt.Sprintf("duplicate: tenants[%d] has the same name", j)}
		}
		seen[t.Name] = i
		tenants = append(tenants, t)
	}
	return tenants, nil
}

func loadTenant(path string, i int, raw json.RawMessage, c *Config, lookup Lookup) (Tenant, error) {
	fail := func(name, field, reason string, args ...any) error {
		return &TenantsError{File: path, Tenant: name, Index: i, Field: field, Reason: fmt.Sprintf(reason, args...)}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
		return Tenant{}, fail("", "", "is not a map of fields")
	}
	// The name first, so that every later error can name the tenant.
	var name string
	if v, ok := keys["name"]; !ok {
		return Tenant{}, fail("", "name", "is missing")
	} else if err := json.Unmarshal(v, &name); err != nil {
		return Tenant{}, fail("", "name", "must be a string")
	}
	if !ValidTenantName(name) {
		return Tenant{}, fail("", "name", "is not a valid tenant name: 1 to 63 of a-z 0-9 -, starting with a letter or digit")
	}
	// Unknown fields, in a stable order; an inline secret gets a hint and
	// its value is never shown.
	unknown := make([]string, 0)
	for k := range keys {
		if !slices.Contains(tenantFields, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		if hint, secret := inlineSecretFields[k]; secret {
			return Tenant{}, fail(name, k, "secrets are not written in the file; use %s", hint)
		}
		return Tenant{}, fail(name, shownKey(k), "unknown field (known: %s)", strings.Join(tenantFields, ", "))
	}
	var e tenantEntry
	for _, k := range tenantFields {
		v, ok := keys[k]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, fieldOf(&e, k)); err != nil {
			want := "a string"
			if k == "managedIdentity" {
				want = "true or false"
			}
			return Tenant{}, fail(name, k, "must be %s", want)
		}
	}
	e.Name = name

	t := Tenant{Name: name, API: c.API}
	if e.API != "" {
		api, err := connector.ParseAPI(e.API)
		if err != nil {
			return Tenant{}, fail(name, "api", "is not graph or mde")
		}
		t.API = api
	}

	// Cloud, then the defaults that follow it and the API.
	t.Cloud = c.DefenderCloud
	if e.Cloud != "" {
		t.Cloud = e.Cloud
	}
	cloud, err := connector.CloudByName(t.Cloud)
	if err != nil {
		return Tenant{}, fail(name, "cloud", "%q is not one of public, gcc, gcc-high, dod", t.Cloud)
	}
	// A tenant in the default cloud takes the configured values; a tenant
	// in another cloud takes the variables that are set, and its own
	// cloud's hosts and scope for the others. The API's URL and scope of a
	// tenant on another API than DEFENDER_API are that API's own.
	inherit := func(key, fromConfig, fromCloud string) string {
		if t.API != c.API && key != "AZURE_AUTHORITY_HOST" {
			return fromCloud
		}
		if e.Cloud == "" || e.Cloud == c.DefenderCloud {
			return fromConfig
		}
		if v, set := lookup(key); set && strings.TrimSpace(v) != "" {
			return fromConfig
		}
		return fromCloud
	}
	t.APIURL = orDefault(e.APIURL, inherit("DEFENDER_API_URL", c.DefenderAPIURL, cloud.APIURL(t.API)))
	t.Scope = orDefault(e.Scope, inherit("DEFENDER_SCOPE", c.DefenderScope, cloud.Scope(t.API)))
	authority := orDefault(e.AuthorityHost, inherit("AZURE_AUTHORITY_HOST", c.AzureAuthorityHost, cloud.AuthorityHost))
	for _, u := range []struct{ field, raw string }{{"apiUrl", t.APIURL}, {"authorityHost", authority}} {
		if err := tenantURL(u.raw); err != nil {
			return Tenant{}, fail(name, u.field, "%v", err)
		}
	}
	if e.Scope != "" {
		if u, err := url.Parse(e.Scope); err != nil || u.Scheme == "" || u.Host == "" || u.User != nil {
			return Tenant{}, fail(name, "scope", "is not a scope such as https://api.securitycenter.microsoft.com/.default")
		}
	}
	// DEFENDER_RATE_LIMITS, when set, is every tenant's default; unset, a
	// tenant's default is its API's quota.
	t.RateLimits = c.RateLimits
	if v, set := lookup("DEFENDER_RATE_LIMITS"); (!set || strings.TrimSpace(v) == "") && t.API != c.API {
		t.RateLimits, _ = connector.ParseLimits(t.API.DefaultRateLimits())
	}
	if e.RateLimits != "" {
		if t.RateLimits, err = connector.ParseLimits(e.RateLimits); err != nil {
			return Tenant{}, fail(name, "rateLimits", "%v", err)
		}
	}

	// The app registration.
	if e.TenantID == "" {
		return Tenant{}, fail(name, "tenantId", "is missing")
	}
	if !guidPattern.MatchString(e.TenantID) && !domainPattern.MatchString(e.TenantID) {
		return Tenant{}, fail(name, "tenantId", "is not a GUID or a domain name (the value is not shown)")
	}
	if e.ClientID == "" && !e.ManagedIdentity {
		return Tenant{}, fail(name, "clientId", "is missing")
	}
	if e.ClientID != "" && !guidPattern.MatchString(e.ClientID) {
		return Tenant{}, fail(name, "clientId", "is not a GUID (the value is not shown)")
	}

	// Exactly one credential, by reference.
	var chosen []string
	for _, k := range []struct {
		field string
		set   bool
	}{
		{"clientSecretFile", e.ClientSecretFile != ""},
		{"clientSecretEnv", e.ClientSecretEnv != ""},
		{"certificateFile", e.CertificateFile != ""},
		{"federatedTokenFile", e.FederatedTokenFile != ""},
		{"managedIdentity", e.ManagedIdentity},
	} {
		if k.set {
			chosen = append(chosen, k.field)
		}
	}
	switch len(chosen) {
	case 0:
		return Tenant{}, fail(name, "credential", "none: set exactly one of clientSecretFile, clientSecretEnv, certificateFile, federatedTokenFile, managedIdentity")
	case 1:
	default:
		return Tenant{}, fail(name, chosen[1], "more than one credential (%s): set exactly one", strings.Join(chosen, ", "))
	}
	if e.CertificatePasswordFile != "" && e.CertificateFile == "" {
		return Tenant{}, fail(name, "certificatePasswordFile", "goes with certificateFile")
	}
	cred := connector.CredentialConfig{
		TenantID:      e.TenantID,
		ClientID:      e.ClientID,
		AuthorityHost: authority,
	}
	switch chosen[0] {
	case "clientSecretFile":
		s, err := readSecretFile(e.ClientSecretFile)
		if err != nil {
			return Tenant{}, fail(name, "clientSecretFile", "%v", err)
		}
		cred.ClientSecret = s
		t.CredentialSource = "clientSecretFile " + e.ClientSecretFile
	case "clientSecretEnv":
		if !envNamePattern.MatchString(e.ClientSecretEnv) {
			return Tenant{}, fail(name, "clientSecretEnv", "%q is not an environment variable name", e.ClientSecretEnv)
		}
		s, set := lookup(e.ClientSecretEnv)
		if !set || strings.TrimSpace(s) == "" {
			return Tenant{}, fail(name, "clientSecretEnv", "the variable %s is not set or empty", e.ClientSecretEnv)
		}
		cred.ClientSecret = strings.TrimSpace(s)
		t.CredentialSource = "clientSecretEnv " + e.ClientSecretEnv
	case "certificateFile":
		if err := readable(e.CertificateFile); err != nil {
			return Tenant{}, fail(name, "certificateFile", "%v", err)
		}
		cred.CertificatePath = e.CertificateFile
		if e.CertificatePasswordFile != "" {
			p, err := readSecretFile(e.CertificatePasswordFile)
			if err != nil {
				return Tenant{}, fail(name, "certificatePasswordFile", "%v", err)
			}
			cred.CertificatePassword = p
		}
		t.CredentialSource = "certificateFile " + e.CertificateFile
	case "federatedTokenFile":
		if err := readable(e.FederatedTokenFile); err != nil {
			return Tenant{}, fail(name, "federatedTokenFile", "%v", err)
		}
		cred.FederatedTokenFile = e.FederatedTokenFile
		t.CredentialSource = "federatedTokenFile " + e.FederatedTokenFile
	case "managedIdentity":
		cred.ManagedIdentity = true
		t.CredentialSource = "managedIdentity"
	}
	t.Credential = cred
	return t, nil
}

// fieldOf returns the address of the tenantEntry field that key names.
func fieldOf(e *tenantEntry, key string) any {
	switch key {
	case "name":
		return &e.Name
	case "tenantId":
		return &e.TenantID
	case "clientId":
		return &e.ClientID
	case "clientSecretFile":
		return &e.ClientSecretFile
	case "clientSecretEnv":
		return &e.ClientSecretEnv
	case "certificateFile":
		return &e.CertificateFile
	case "certificatePasswordFile":
		return &e.CertificatePasswordFile
	case "federatedTokenFile":
		return &e.FederatedTokenFile
	case "managedIdentity":
		return &e.ManagedIdentity
	case "api":
		return &e.API
	case "cloud":
		return &e.Cloud
	case "apiUrl":
		return &e.APIURL
	case "scope":
		return &e.Scope
	case "authorityHost":
		return &e.AuthorityHost
	case "rateLimits":
		return &e.RateLimits
	}
	panic("config: tenant field without a destination: " + key)
}

// tenantURL checks an https URL without ever quoting one that carries
// credentials.
func tenantURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL")
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	return httpsURL(raw)
}

var fieldNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,31}$`)

// shownKey is an unknown key as an error may show it: a key that looks like
// a field name is shown; anything else could be a value written as a key
// (a secret in a flow map) and is not.
func shownKey(k string) string {
	if fieldNamePattern.MatchString(k) {
		return k
	}
	return "(a key that is not shown)"
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// readSecretFile reads a secret kept in a file (a Kubernetes Secret
// mounted as a file, a Docker secret). One trailing newline is ignored.
// Errors say what is wrong with the file, never what it holds.
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot be read: %v", unwrapPathError(err))
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s holds more than one line", path)
	}
	return s, nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot be read: %v", unwrapPathError(err))
	}
	return f.Close()
}

// unwrapPathError keeps the path and the reason of an *os.PathError.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

var (
	yamlDuplicateKey = regexp.MustCompile(`key "([^"]*)" already set in map`)
	yamlQuoted       = regexp.MustCompile("\"[^\"]*\"|'[^']*'|`[^`]*`")
)

// yamlReason keeps the position and the nature of a YAML error and drops
// any text quoted from the document (a value there could be a secret); a
// duplicate key is named when it is one of the file's own fields.
func yamlReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlDuplicateKey.ReplaceAllStringFunc(msg, func(m string) string {
		key := yamlDuplicateKey.FindStringSubmatch(m)[1]
		if key == "tenants" || slices.Contains(tenantFields, key) {
			return "duplicate key " + key
		}
		return "duplicate key"
	})
	msg = yamlQuoted.ReplaceAllStringFunc(msg, func(q string) string {
		if len(q) <= 3 { // a quoted character: punctuation the parser expected
			return q
		}
		return "(value not shown)"
	})
	return strings.Join(strings.Fields(msg), " ")
}

// jsonReason describes a decoding error without the value that caused it.
func jsonReason(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("%s must not be a %s", orDefault(ute.Field, "the document"), ute.Value)
	}
	msg := err.Error()
	if key, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + shownKey(strings.Trim(key, `"`))
	}
	return "not a map with the key tenants"
}

// Errors of Tenants.Resolve.
var (
	// ErrUnknownTenant: the request names a tenant that is not configured,
	// or names none and there is no default tenant (failure kind
	// unknown_tenant).
	ErrUnknownTenant = errors.New("unknown tenant")
	// ErrTenantConflict: the request names two different tenants (failure
	// kind invalid_request).
	ErrTenantConflict = errors.New("conflicting tenants")
)

// Tenants is the configured set of tenants, looked up by name and by Entra
// tenant ID. It is immutable: a reload builds a new one.
type Tenants struct {
	list       []Tenant
	byName     map[string]*Tenant
	byEntraID  map[string][]*Tenant
	defaultTen *Tenant
}

// NewTenants indexes list, whose names are unique (LoadTenants checks it).
func NewTenants(list []Tenant) *Tenants {
	s := &Tenants{
		list:      slices.Clone(list),
		byName:    make(map[string]*Tenant, len(list)),
		byEntraID: make(map[string][]*Tenant, len(list)),
	}
	for i := range s.list {
		t := &s.list[i]
		s.byName[t.Name] = t
		id := strings.ToLower(t.Credential.TenantID)
		s.byEntraID[id] = append(s.byEntraID[id], t)
	}
	s.defaultTen = s.byName[DefaultTenant]
	return s
}

// All returns the tenants in the order of the file.
func (s *Tenants) All() []Tenant { return slices.Clone(s.list) }

// Names returns the tenants' names in the order of the file.
func (s *Tenants) Names() []string {
	names := make([]string, len(s.list))
	for i := range s.list {
		names[i] = s.list[i].Name
	}
	return names
}

// Get returns the tenant called name.
func (s *Tenants) Get(name string) (*Tenant, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Resolve finds the tenant of a request from what names it: the tenant
// token of the subject it was published to (<REQUEST_SUBJECT>.<name>), the
// string "tenant" field of its JSON body, and the Entra "tenantId" of an
// alert object. Any of them may be empty. named reports whether the request
// named its tenant (its results then go to the tenant's own subjects).
//
// The subject and the tenant field must agree. An Entra tenant ID counts
// only when it belongs to a configured tenant (SIEM alert objects carry it
// whether or not the provider serves that tenant under this app); it then
// names that tenant, must agree with the other two, and must be unambiguous
// when nothing else names the tenant. A request that names nothing goes to
// the tenant called "default", if there is one.
func (s *Tenants) Resolve(subjectTenant, bodyTenant, entraTenantID string) (t *Tenant, named bool, err error) {
	name := subjectTenant
	if bodyTenant != "" {
		if name != "" && name != bodyTenant {
			return nil, true, fmt.Errorf("%w: the subject names tenant %q and the body %q", ErrTenantConflict, name, bodyTenant)
		}
		name = bodyTenant
	}
	byID := s.byEntraID[strings.ToLower(entraTenantID)]
	if entraTenantID == "" {
		byID = nil
	}
	if name != "" {
		t, ok := s.byName[name]
		if !ok {
			return nil, true, fmt.Errorf("%w: %q is not configured", ErrUnknownTenant, name)
		}
		if len(byID) > 0 && !slices.Contains(byID, t) {
			return nil, true, fmt.Errorf("%w: tenant %q and the alert's tenantId of tenant %q", ErrTenantConflict, name, byID[0].Name)
		}
		return t, true, nil
	}
	switch len(byID) {
	case 0:
	case 1:
		return byID[0], true, nil
	default:
		return nil, true, fmt.Errorf("%w: the alert's tenantId belongs to %d configured tenants; name one with the subject or a tenant field", ErrTenantConflict, len(byID))
	}
	if s.defaultTen == nil {
		return nil, false, fmt.Errorf("%w: the request names no tenant and no tenant is called %q", ErrUnknownTenant, DefaultTenant)
	}
	return s.defaultTen, false, nil
}

// EnvironmentTenant is the one tenant "default" that the AZURE_* and
// DEFENDER_* variables form when there is no TENANTS_FILE.
func (c *Config) EnvironmentTenant() Tenant {
	return Tenant{
		Name:       DefaultTenant,
		API:        c.API,
		Cloud:      c.DefenderCloud,
		APIURL:     c.DefenderAPIURL,
		Scope:      c.DefenderScope,
		RateLimits: c.RateLimits,
		Credential: c.Credential(),
	}
}
