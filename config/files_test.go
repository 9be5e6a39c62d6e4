//go:build unix

package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
)

// TestFilesBounded: TENANTS_FILE and every credential file are read only
// when they are regular files within a bound: a device, a FIFO (refused at
// once, not waited on), a directory or a huge file is a clear error.
func TestFilesBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(config.MaxTenantsFile + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	for _, bad := range []struct{ path, want string }{
		{"/dev/zero", "not a regular file"},
		{fifo, "not a regular file"},
		{dir, "not a regular file"},
		{huge, "larger than"},
	} {
		tenant := "tenants:\n  - {name: contoso, tenantId: " + tenantGUID + ", clientId: " + clientGUID + ", "
		for _, doc := range []string{
			tenant + "clientSecretFile: " + bad.path + "}\n",
			tenant + "certificateFile: " + bad.path + "}\n",
			tenant + "certificateFile: $DIR/cert.pem, certificatePasswordFile: " + bad.path + "}\n",
			tenant + "federatedTokenFile: " + bad.path + "}\n",
		} {
			err := within(t, func() error { _, err := loadTenants(t, doc, tenantsEnv(nil)); return err })
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("%s: %v, want %q", doc, err, bad.want)
			}
		}
		cfg, err := config.Load(config.MapEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = within(t, func() error { _, err := config.LoadTenants(bad.path, cfg, config.MapEnv(nil)); return err })
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("TENANTS_FILE %s: %v, want %q", bad.path, err, bad.want)
		}
		for _, v := range []string{"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE"} {
			cfg, err := config.Load(config.MapEnv(map[string]string{"AZURE_TENANT_ID": tenantGUID, "AZURE_CLIENT_ID": clientGUID, v: bad.path}))
			if err != nil {
				t.Fatal(err)
			}
			err = within(t, func() error { _, err := cfg.EnvironmentTenant(); return err })
			if err == nil || !strings.Contains(err.Error(), v) || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("%s=%s: %v, want %q", v, bad.path, err, bad.want)
			}
		}
	}
}

// TestFilesFollowSymlinks: Kubernetes mounts each key of a Secret or a
// ConfigMap as a symbolic link into ..data/, itself a link to the current
// version: such files are read.
func TestFilesFollowSymlinks(t *testing.T) {
	dir := t.TempDir()
	version := filepath.Join(dir, "..2026_11_29_10_00_00.123")
	if err := os.Mkdir(version, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, version, "client-secret", secretValue+"\n")
	writeFile(t, version, "tenants.yaml", "tenants:\n  - {name: contoso, tenantId: "+tenantGUID+", clientId: "+clientGUID+
		", clientSecretFile: "+filepath.Join(dir, "client-secret")+"}\n")
	if err := os.Symlink(filepath.Base(version), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"client-secret", "tenants.yaml"} {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	list, err := config.LoadTenants(filepath.Join(dir, "tenants.yaml"), cfg, config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if list[0].Credential.ClientSecret != secretValue {
		t.Errorf("the secret read through the links: %d bytes", len(list[0].Credential.ClientSecret))
	}
}

// within runs f and fails the test if it has not returned in 10 s (a FIFO
// opened for reading waits for a writer).
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after 10s")
		return nil
	}
}

// TestTenantFilesSayTheirContent: a certificate renewed in place (same
// path) makes a tenant that differs from the one loaded before, so a reload
// builds it again.
func TestTenantFilesSayTheirContent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "cert.pem", "one")
	writeFile(t, dir, "tenants.yaml", "tenants:\n  - {name: contoso, tenantId: "+tenantGUID+", clientId: "+clientGUID+
		", certificateFile: "+filepath.Join(dir, "cert.pem")+"}\n")
	cfg, err := config.Load(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	load := func() config.Tenant {
		t.Helper()
		list, err := config.LoadTenants(filepath.Join(dir, "tenants.yaml"), cfg, config.MapEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		return list[0]
	}
	before := load()
	if again := load(); !reflect.DeepEqual(before, again) {
		t.Fatalf("two loads of the same files differ: %v, %v", before.Files, again.Files)
	}
	writeFile(t, dir, "cert.pem", "two")
	if after := load(); reflect.DeepEqual(before, after) || len(after.Files) != 1 {
		t.Errorf("the renewed certificate left the tenant as it was: %v", after.Files)
	}
}
