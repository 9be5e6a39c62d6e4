package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/config"
)

// pasted looks like an Entra client secret pasted into the wrong place;
// pastedKey, a secret that could pass for a key.
const (
	pasted    = "Xq8Q~PASTED.s3cret_value-0123456789abcdefXYZ"
	pastedKey = "abc8QPASTEDs3cretValue"
)

// tenantFileFields are the keys of a tenant, with a valid value each.
var tenantFileFields = []string{"name", "tenantId", "clientId", "clientSecretFile", "clientSecretEnv", "certificateFile",
	"certificatePasswordFile", "federatedTokenFile", "managedIdentity", "api", "cloud", "apiUrl", "scope", "authorityHost", "rateLimits"}

// TestNoSecretInTenantsFileErrors: a secret pasted into any field of the
// tenants file, as a key, or twice, is never part of the error.
func TestNoSecretInTenantsFileErrors(t *testing.T) {
	docs := map[string]string{
		"as a key":           "tenants:\n  - name: contoso\n    " + pasted + ": x\n",
		"as a plain key":     "tenants:\n  - name: contoso\n    tenantId: " + tenantGUID + "\n    " + pastedKey + ": x\n",
		"as a key, in flow":  "tenants:\n  - {name: contoso, tenantId: " + tenantGUID + ", " + pasted + "}\n",
		"as a top-level key": pasted + ":\n  - name: contoso\n",
		"as a duplicate":     "tenants:\n  - name: contoso\n    cloud: a\n    cloud: " + pasted + "\n",
		"as a broken value":  "tenants:\n  - name: contoso\n    cloud: \"" + pasted + "\n   :\n",
		"as a type error":    "tenants:\n  - name: contoso\n    managedIdentity: " + pasted + "\n",
		"as a list value":    "tenants:\n  - name: contoso\n    cloud: [" + pasted + "]\n",
	}
	for _, field := range tenantFileFields {
		entry := map[string]string{"name": "contoso", "tenantId": tenantGUID, "clientId": clientGUID, "clientSecretEnv": "CONTOSO_SECRET"}
		if field == "clientSecretFile" || field == "certificateFile" || field == "federatedTokenFile" {
			delete(entry, "clientSecretEnv")
		}
		if field == "certificatePasswordFile" {
			delete(entry, "clientSecretEnv")
			entry["certificateFile"] = "$DIR/cert.pem"
		}
		entry[field] = pasted
		var b strings.Builder
		b.WriteString("tenants:\n  -")
		for k, v := range entry {
			fmt.Fprintf(&b, " %s: %q\n   ", k, v)
		}
		docs["in "+field] = b.String()
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			_, err := loadTenants(t, doc, tenantsEnv(nil))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v is not a configuration error", err)
			}
			if strings.Contains(err.Error(), pasted) || strings.Contains(err.Error(), pastedKey) {
				t.Errorf("the error shows the pasted secret: %v", err)
			}
		})
	}
}

// TestNoSecretInEnvironmentErrors: a secret pasted into any AZURE_* or
// NATS_* variable, or a DEFENDER_* variable of the tenants' defaults, is
// never part of an error of Load, of the environment's tenant, or of a
// tenants file beside it.
func TestNoSecretInEnvironmentErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tenants.yaml")
	doc := "tenants:\n  - {name: contoso, tenantId: " + tenantGUID + ", clientId: " + clientGUID + ", managedIdentity: true}\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Variables() {
		credential := strings.HasPrefix(v.Name, "AZURE_") || strings.HasPrefix(v.Name, "NATS_")
		if !credential && (!strings.HasPrefix(v.Name, "DEFENDER_") || v.Name == "DEFENDER_TIMEOUT") {
			continue // a value that is shown: a duration, a subject, a level
		}
		for _, value := range []string{pasted, "https://user:" + pasted + "@host.example", pasted + "/.default"} {
			env := map[string]string{v.Name: value}
			cfg, err := config.Load(config.MapEnv(env))
			if err != nil {
				if strings.Contains(err.Error(), pasted) {
					t.Errorf("%s: Load shows the secret: %v", v.Name, err)
				}
				continue
			}
			if _, err := cfg.EnvironmentTenant(); err != nil && strings.Contains(err.Error(), pasted) {
				t.Errorf("%s: the environment's tenant shows the secret: %v", v.Name, err)
			}
			if _, err := config.LoadTenants(file, cfg, config.MapEnv(env)); err != nil && strings.Contains(err.Error(), pasted) {
				t.Errorf("%s: the tenants file shows the secret: %v", v.Name, err)
			}
		}
	}
}

// FuzzLoadTenants: any file is a list of tenants or a *TenantsError, never
// a panic, and no error quotes the secret that the file or its variable
// holds, wherever the file puts it.
func FuzzLoadTenants(f *testing.F) {
	f.Add("tenants:\n  - name: contoso\n    tenantId: " + tenantGUID + "\n    clientId: " + clientGUID + "\n    clientSecretEnv: CONTOSO_SECRET\n")
	f.Add("tenants:\n  - name: contoso\n    clientSecret: \"" + secretValue + "\n   :\n")
	f.Add("tenants:\n  - {name: a, clientId: " + secretValue + ", managedIdentity: true, tenantId: " + tenantGUID + "}\n")
	f.Add(`{"tenants":[{"name":"x","apiUrl":"http://u:` + secretValue + `@h"}]}`)
	f.Add("tenants:\n  - {name: a, " + secretValue + ": 1, " + strings.ToUpper(secretValue) + ": 2}\n")
	f.Add("tenants:\n  - {name: a, tenantId: " + tenantGUID + ", clientSecretEnv: '" + secretValue + "', cloud: " + secretValue + "}\n")
	f.Fuzz(func(t *testing.T, file string) {
		tenants, err := loadTenants(t, file, tenantsEnv(nil))
		if err != nil {
			var te *config.TenantsError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TenantsError: %v", err, err)
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Fatalf("the error shows the secret: %v", err)
			}
			return
		}
		for _, tn := range tenants {
			if !config.ValidTenantName(tn.Name) {
				t.Fatalf("loaded an invalid name %q", tn.Name)
			}
		}
	})
}
