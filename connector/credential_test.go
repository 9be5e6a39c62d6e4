package connector_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

const (
	testSecret   = "Sup3r-S3cret~value.that-must-never-show"
	testPassword = "cert-P4ssword-never-shown"
)

func TestNewCredentialRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	notCert := filepath.Join(dir, "not-a-cert.pem")
	if err := os.WriteFile(notCert, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := connector.CredentialConfig{TenantID: "t", ClientID: "c"}
	with := func(f func(*connector.CredentialConfig)) connector.CredentialConfig {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name  string
		cfg   connector.CredentialConfig
		names []string // environment variables the message must name
	}{
		{name: "none chosen", cfg: base,
			names: []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "DEFENDER_MANAGED_IDENTITY"}},
		{name: "secret and certificate", cfg: with(func(c *connector.CredentialConfig) { c.ClientSecret, c.CertificatePath = testSecret, notCert }),
			names: []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"}},
		{name: "secret and managed identity", cfg: with(func(c *connector.CredentialConfig) { c.ClientSecret, c.ManagedIdentity = testSecret, true }),
			names: []string{"AZURE_CLIENT_SECRET", "DEFENDER_MANAGED_IDENTITY"}},
		{name: "federated and managed identity", cfg: with(func(c *connector.CredentialConfig) { c.FederatedTokenFile, c.ManagedIdentity = "/x", true }),
			names: []string{"AZURE_FEDERATED_TOKEN_FILE", "DEFENDER_MANAGED_IDENTITY"}},
		{name: "no tenant", cfg: connector.CredentialConfig{ClientID: "c", ClientSecret: testSecret},
			names: []string{"AZURE_TENANT_ID"}},
		{name: "no tenant nor client", cfg: connector.CredentialConfig{ClientSecret: testSecret},
			names: []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID"}},
		{name: "password without certificate", cfg: with(func(c *connector.CredentialConfig) { c.ClientSecret, c.CertificatePassword = testSecret, testPassword }),
			names: []string{"AZURE_CLIENT_CERTIFICATE_PASSWORD"}},
		{name: "certificate missing", cfg: with(func(c *connector.CredentialConfig) { c.CertificatePath = filepath.Join(dir, "missing.pem") }),
			names: []string{"AZURE_CLIENT_CERTIFICATE_PATH"}},
		{name: "certificate unreadable", cfg: with(func(c *connector.CredentialConfig) { c.CertificatePath, c.CertificatePassword = notCert, testPassword }),
			names: []string{"AZURE_CLIENT_CERTIFICATE_PATH"}},
		{name: "federated token file missing", cfg: with(func(c *connector.CredentialConfig) { c.FederatedTokenFile = filepath.Join(dir, "missing") }),
			names: []string{"AZURE_FEDERATED_TOKEN_FILE"}},
		{name: "http authority", cfg: with(func(c *connector.CredentialConfig) {
			c.ClientSecret, c.AuthorityHost = testSecret, "http://login.example/"
		}),
			names: []string{"AZURE_AUTHORITY_HOST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, err := connector.NewCredential(tt.cfg)
			if !errors.Is(err, connector.ErrCredentialConfig) || cred != nil {
				t.Fatalf("NewCredential = %v, %v; want ErrCredentialConfig", cred, err)
			}
			for _, name := range tt.names {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testPassword) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}

func TestManagedIdentityCredential(t *testing.T) {
	for _, clientID := range []string{"", "11111111-2222-3333-4444-555555555555"} {
		cred, err := connector.NewCredential(connector.CredentialConfig{ManagedIdentity: true, ClientID: clientID})
		if err != nil || cred == nil {
			t.Errorf("NewCredential(managed identity, client %q) = %v, %v", clientID, cred, err)
		}
	}
}

// writeCertificate writes a self-signed RSA certificate and its key as one
// PEM file, as AZURE_CLIENT_CERTIFICATE_PATH takes it.
func writeCertificate(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "alert-domains test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCredentialsAgainstTheEmulator(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"), 0o600); err != nil {
		t.Fatal(err)
	}
	certPath := writeCertificate(t)
	tests := []struct {
		name string
		set  func(*connector.CredentialConfig)
	}{
		{name: "client secret", set: func(*connector.CredentialConfig) {}},
		{name: "certificate", set: func(c *connector.CredentialConfig) { c.ClientSecret, c.CertificatePath = "", certPath }},
		{name: "workload identity", set: func(c *connector.CredentialConfig) { c.ClientSecret, c.FederatedTokenFile = "", tokenFile }},
		{name: "authority without trailing slash", set: func(c *connector.CredentialConfig) { c.AuthorityHost = strings.TrimSuffix(c.AuthorityHost, "/") }},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				srv := newServer(t, emulator.Config{SeedData: true})
				cfg := srv.Credential()
				tt.set(&cfg)
				cred, err := connector.NewCredential(cfg)
				if err != nil {
					t.Fatal(err)
				}
				c := newClientWith(t, srv, api, cred, emulator.ScopeOf(api))
				res, err := c.Domains(t.Context(), alertID)
				if err != nil || !reflect.DeepEqual(res.Domains, []string{"www.example.com", "cdn.example.net"}) {
					t.Fatalf("Domains = %+v, %v", res, err)
				}
				if n := srv.TokensIssued(); n != 1 {
					t.Errorf("%d tokens issued, want 1", n)
				}
			})
		}
	})
}
