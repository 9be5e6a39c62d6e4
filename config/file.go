package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Bounds of TENANTS_FILE and of a secret, certificate or token file.
const (
	MaxTenantsFile    = 64 << 20
	maxCredentialFile = 1 << 20
)

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

var fileNames = names{"api", "cloud", "apiUrl", "scope", "authorityHost", "rateLimits", "tenantId", "clientId", "certificateFile"}

// tenantFields are the keys of a tenant, matched exactly.
var tenantFields = func() []string {
	t := reflect.TypeFor[tenantEntry]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = t.Field(i).Tag.Get("json")
	}
	return keys
}()

// inlineSecretFields are keys that would hold a secret, with the field to use.
var inlineSecretFields = map[string]string{
	"clientSecret": "clientSecretFile or clientSecretEnv", "secret": "clientSecretFile or clientSecretEnv",
	"password": "certificatePasswordFile", "certificatePassword": "certificatePasswordFile",
	"certificate": "certificateFile", "federatedToken": "federatedTokenFile", "token": "federatedTokenFile",
}

var (
	tenantNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	envNamePattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	yamlLine          = regexp.MustCompile(`line (\d+)`)
)

// ValidTenantName reports whether name can name a tenant (a subject token).
func ValidTenantName(name string) bool { return tenantNamePattern.MatchString(name) }

// TenantsError is a mistake in TENANTS_FILE, naming the tenant and field,
// never a value or an unknown key.
type TenantsError struct {
	File   string
	Tenant string // the tenant's name, or "" before a name could be read
	Index  int    // position in tenants:, from 0; -1 for the file as a whole
	Field  string
	Reason string
}

func (e *TenantsError) Error() string {
	where := ""
	switch {
	case e.Index >= 0 && e.Tenant != "":
		where = fmt.Sprintf(": tenant %q (tenants[%d])", e.Tenant, e.Index)
	case e.Index >= 0:
		where = fmt.Sprintf(": tenants[%d]", e.Index)
	}
	if e.Field != "" {
		where += ": " + e.Field
	}
	return "TENANTS_FILE " + e.File + where + ": " + e.Reason
}

// Unwrap makes every TenantsError a configuration error.
func (e *TenantsError) Unwrap() error { return ErrInvalid }

// LoadTenants reads the tenants file at path, with c's defaults, and every
// secret now (clientSecretEnv through lookup).
func LoadTenants(path string, c *Config, lookup Lookup) ([]Tenant, error) {
	fileErr := func(reason string) error { return &TenantsError{File: path, Index: -1, Reason: reason} }
	if v := c.credentialVariable(); v != "" {
		return nil, fileErr(v + " is set as well: with a tenants file every app registration and credential is in the file")
	}
	data, err := ReadTenantsFile(path)
	if err != nil {
		return nil, fileErr(err.Error())
	}
	raws, err := decodeTenants(data)
	if err != nil {
		return nil, fileErr(err.Error())
	}
	tenants := make([]Tenant, 0, len(raws))
	seen := make(map[string]int, len(raws))
	for i, raw := range raws {
		t, err := c.fileTenant(raw, lookup)
		if j, dup := seen[t.Name]; err == nil && dup {
			err = &fieldError{"name", fmt.Sprintf("duplicate: tenants[%d] has the same name", j)}
		}
		if fe, ok := errors.AsType[*fieldError](err); ok {
			return nil, &TenantsError{File: path, Tenant: t.Name, Index: i, Field: fe.field, Reason: fe.reason}
		}
		seen[t.Name] = i
		tenants = append(tenants, t)
	}
	return tenants, nil
}

// secondDocument is a YAML document marker after content: only the first document would be read.
var secondDocument = regexp.MustCompile(`(?m)^[^#\s].*\n(?s:.*)^(---|\.\.\.)(\s|$)`)

// decodeTenants is the file's list of tenants, each still JSON; of the
// library's errors, which quote the document, only the line is passed on.
func decodeTenants(data []byte) ([]json.RawMessage, error) {
	doc, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		reason := "is not valid YAML"
		if _, lax := yaml.YAMLToJSON(data); lax == nil {
			reason += ": a key is given twice in one map"
		}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			reason += " (line " + m[1] + ")"
		}
		return nil, errors.New(reason)
	}
	var top map[string]json.RawMessage
	var list []json.RawMessage
	if secondDocument.Match(data) || json.Unmarshal(doc, &top) != nil || len(top) != 1 || json.Unmarshal(top["tenants"], &list) != nil {
		return nil, errors.New("is not one YAML document, a map with the one key tenants, a list of tenants (the file's keys are not shown)")
	}
	if len(list) == 0 {
		return nil, errors.New("tenants: lists no tenant")
	}
	return list, nil
}

// fileTenant resolves one tenant of the file; its error is a *fieldError.
func (c *Config) fileTenant(raw json.RawMessage, lookup Lookup) (Tenant, error) {
	e, err := decodeEntry(raw)
	if err != nil {
		return Tenant{Name: e.Name}, err
	}
	s := spec{api: e.API, cloud: e.Cloud, apiURL: e.APIURL, scope: e.Scope, authority: e.AuthorityHost, rateLimits: e.RateLimits,
		tenantID: e.TenantID, clientID: e.ClientID, requireTenantID: true}
	t, err := endpoint(&s, &c.explicit, &fileNames)
	if t.Name = e.Name; err != nil {
		return t, err
	}
	cred := &t.Credential
	s.credentials = []credential{
		fromFile("clientSecretFile", e.ClientSecretFile, &cred.ClientSecret),
		{field: "clientSecretEnv", set: e.ClientSecretEnv != "", load: func() (err error) {
			cred.ClientSecret, err = secretFromEnv(e.ClientSecretEnv, lookup)
			return err
		}},
		byFile("certificateFile", e.CertificateFile, &cred.CertificatePath),
		byFile("federatedTokenFile", e.FederatedTokenFile, &cred.FederatedTokenFile),
		{field: "managedIdentity", set: e.ManagedIdentity, managed: true},
	}
	s.password = fromFile("certificatePasswordFile", e.CertificatePasswordFile, &cred.CertificatePassword)
	t.Files = FileSums(e.ClientSecretFile, e.CertificateFile, e.CertificatePasswordFile) // before they are read: a change after is seen
	source, err := register(&s, &fileNames, cred)
	if err != nil {
		return t, err
	}
	if e.ClientSecretEnv != "" && slices.Contains(c.HookVariables, e.ClientSecretEnv) {
		return t, &fieldError{"clientSecretEnv", "names a variable HOOK_ENV gives to hooks: hooks never get a credential"}
	}
	t.CredentialSource = strings.TrimSpace(source + " " + cmp.Or(e.ClientSecretFile, e.ClientSecretEnv, e.CertificateFile, e.FederatedTokenFile))
	return t, nil
}

// decodeEntry decodes one tenant: its keys exactly, then its values.
func decodeEntry(raw json.RawMessage) (tenantEntry, error) {
	var e tenantEntry
	var keys map[string]json.RawMessage
	if json.Unmarshal(raw, &keys) != nil || keys == nil {
		return e, &fieldError{"", "is not a map of fields"}
	}
	if json.Unmarshal(keys["name"], &e.Name) != nil || !ValidTenantName(e.Name) {
		e.Name = ""
		return e, &fieldError{"name", "is missing or not a valid tenant name: 1 to 63 of a-z 0-9 -, starting with a letter or digit (the value is not shown)"}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !slices.Contains(tenantFields, k) {
			return e, unknownField(k)
		}
	}
	var ute *json.UnmarshalTypeError
	if err := json.Unmarshal(raw, &e); errors.As(err, &ute) {
		want := "a string"
		if ute.Type.Kind() == reflect.Bool {
			want = "true or false"
		}
		return e, &fieldError{ute.Field, "must be " + want}
	} else if err != nil {
		return e, &fieldError{"", "cannot be read"}
	}
	return e, nil
}

// unknownField describes an unknown key, which may be a secret, unshown.
func unknownField(key string) error {
	if use, ok := inlineSecretFields[key]; ok {
		return &fieldError{key, "secrets are not written in the file; use " + use}
	}
	for _, f := range tenantFields {
		if strings.EqualFold(f, key) {
			return &fieldError{f, "is written with other capitals (keys are matched exactly; the key is not shown)"}
		}
	}
	return &fieldError{"", "an unknown field (the key is not shown; the fields are " + strings.Join(tenantFields, ", ") + ")"}
}

// credentialVariable is the first AZURE_* credential variable set.
func (c *Config) credentialVariable() string {
	for _, f := range variables(c) {
		if f.credential && !f.value.IsZero() {
			return f.Name
		}
	}
	return ""
}

func secretFromEnv(name string, lookup Lookup) (string, error) {
	if !envNamePattern.MatchString(name) {
		return "", errors.New("is not an environment variable name (the value is not shown)")
	}
	s, set := lookup(name)
	if s = strings.TrimSpace(s); !set || s == "" {
		return "", errors.New("the variable it names is not set or is empty (the name is not shown)")
	}
	return s, nil
}

// readSecretFile reads a one-line secret file.
func readSecretFile(path string) (string, error) {
	data, err := readRegular(path, maxCredentialFile)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case strings.TrimSpace(s) == "":
		return "", errors.New("the file is empty")
	case strings.ContainsAny(s, "\r\n"):
		return "", errors.New("the file holds more than one line")
	}
	return s, nil
}
