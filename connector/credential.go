package connector

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// CredentialConfig is the app registration and exactly one kind of credential.
type CredentialConfig struct {
	TenantID string // AZURE_TENANT_ID
	ClientID string // AZURE_CLIENT_ID; with ManagedIdentity, a user-assigned identity

	ClientSecret string // AZURE_CLIENT_SECRET

	CertificatePath     string // AZURE_CLIENT_CERTIFICATE_PATH: PEM or PKCS#12
	CertificatePassword string // AZURE_CLIENT_CERTIFICATE_PASSWORD

	FederatedTokenFile string // AZURE_FEDERATED_TOKEN_FILE: workload identity

	ManagedIdentity bool // DEFENDER_MANAGED_IDENTITY

	AuthorityHost string       // default https://login.microsoftonline.com/
	Transport     *http.Client // optional HTTP client of the credential
}

// NewCredential builds the one azidentity credential cfg describes. Errors
// wrap ErrCredentialConfig and, like the credential's own, never hold a secret.
func NewCredential(cfg CredentialConfig) (azcore.TokenCredential, error) {
	kind, err := credentialKind(cfg)
	if err != nil {
		return nil, err
	}
	host, disableDiscovery, err := authority(cfg.AuthorityHost)
	if err != nil {
		return nil, err
	}
	opts := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: host}}
	if cfg.Transport != nil {
		opts.Transport = cfg.Transport
	}
	// Token requests are retried as the SDK does, except on an untrusted
	// certificate and the like, which no retry cures.
	clientOpts := opts
	clientOpts.Retry.ShouldRetry = sdkShouldRetry

	var cred azcore.TokenCredential
	switch kind {
	case "DEFENDER_MANAGED_IDENTITY":
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if cfg.ClientID != "" {
			o.ID = azidentity.ClientID(cfg.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	case "AZURE_CLIENT_SECRET":
		cred, err = azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOpts, DisableInstanceDiscovery: disableDiscovery})
	case "AZURE_CLIENT_CERTIFICATE_PATH":
		cred, err = certificateCredential(cfg, &azidentity.ClientCertificateCredentialOptions{ClientOptions: clientOpts, DisableInstanceDiscovery: disableDiscovery})
	default: // AZURE_FEDERATED_TOKEN_FILE
		if _, err = os.Stat(cfg.FederatedTokenFile); err == nil {
			cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
				ClientOptions:            clientOpts,
				ClientID:                 cfg.ClientID,
				TenantID:                 cfg.TenantID,
				TokenFilePath:            cfg.FederatedTokenFile,
				DisableInstanceDiscovery: disableDiscovery,
			})
		}
	}
	if err != nil {
		return nil, credentialErrorf("%s: %s", kind, scrub(err.Error(), cfg.ClientSecret, cfg.CertificatePassword))
	}
	return &redactingCredential{cred: cred, secrets: []string{cfg.ClientSecret, cfg.CertificatePassword}}, nil
}

func certificateCredential(cfg CredentialConfig, opts *azidentity.ClientCertificateCredentialOptions) (azcore.TokenCredential, error) {
	data, err := os.ReadFile(cfg.CertificatePath)
	if err != nil {
		return nil, fmt.Errorf("the file cannot be read (the path is not shown): %w", errors.Unwrap(err))
	}
	certs, key, err := azidentity.ParseCertificates(data, []byte(cfg.CertificatePassword))
	if err != nil {
		return nil, fmt.Errorf("not a PEM or PKCS#12 certificate with its private key, or AZURE_CLIENT_CERTIFICATE_PASSWORD is wrong (the path is not shown): %w", err)
	}
	return azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key, opts)
}

// credentialKind is the variable that names cfg's one credential.
func credentialKind(cfg CredentialConfig) (string, error) {
	var chosen []string
	for _, c := range []struct {
		set  bool
		name string
	}{
		{cfg.ManagedIdentity, "DEFENDER_MANAGED_IDENTITY"},
		{cfg.ClientSecret != "", "AZURE_CLIENT_SECRET"},
		{cfg.CertificatePath != "", "AZURE_CLIENT_CERTIFICATE_PATH"},
		{cfg.FederatedTokenFile != "", "AZURE_FEDERATED_TOKEN_FILE"},
	} {
		if c.set {
			chosen = append(chosen, c.name)
		}
	}
	const choices = "AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE or DEFENDER_MANAGED_IDENTITY=true"
	switch {
	case len(chosen) == 0:
		return "", fmt.Errorf("%w: %w: set one of %s", ErrCredentialConfig, ErrNoCredential, choices)
	case len(chosen) > 1:
		return "", credentialErrorf("more than one credential (%s): set only one of %s", strings.Join(chosen, ", "), choices)
	case cfg.CertificatePassword != "" && cfg.CertificatePath == "":
		return "", credentialErrorf("AZURE_CLIENT_CERTIFICATE_PASSWORD is set without AZURE_CLIENT_CERTIFICATE_PATH")
	}
	if !cfg.ManagedIdentity {
		var missing []string
		if cfg.TenantID == "" {
			missing = append(missing, "AZURE_TENANT_ID")
		}
		if cfg.ClientID == "" {
			missing = append(missing, "AZURE_CLIENT_ID")
		}
		if len(missing) > 0 {
			return "", credentialErrorf("%s must be set with %s", strings.Join(missing, " and "), chosen[0])
		}
	}
	return chosen[0], nil
}

// authority is the Entra host, ending in a slash, and whether instance
// discovery is off: it is for any host but Microsoft's own.
func authority(host string) (string, bool, error) {
	host = cmp.Or(host, "https://login.microsoftonline.com/")
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return "", false, credentialErrorf("AZURE_AUTHORITY_HOST %q must be an https URL", host)
	}
	host = strings.TrimSuffix(host, "/") + "/"
	switch strings.ToLower(u.Hostname()) {
	case "login.microsoftonline.com", "login.microsoftonline.us", "login.microsoft.com",
		"login.windows.net", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
		"login-us.microsoftonline.com", "login.usgovcloudapi.net":
		return host, false, nil
	}
	return host, true, nil
}

func credentialErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCredentialConfig, fmt.Sprintf(format, args...))
}
