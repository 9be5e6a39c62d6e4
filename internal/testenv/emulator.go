package testenv

import (
	"testing"

	"github.com/alert-domains/alert-domains/emulator"
)

// StartEmulator starts the Defender + Entra ID emulator and writes its
// certificate to a file for SSL_CERT_FILE.
func StartEmulator(tb testing.TB, cfg emulator.Config) (emu *emulator.Server, certFile string) {
	tb.Helper()
	emu = emulator.NewServer(cfg)
	tb.Cleanup(emu.Close)
	return emu, WriteCertificate(tb, emu.Certificate())
}

// ServiceEnv is the environment of an alert-domains process that talks to
// emu and natsURL, logs JSON and serves no HTTP; extra entries win.
func ServiceEnv(emu *emulator.Server, certFile, natsURL string, extra ...string) []string {
	return append([]string{
		"NATS_URL=" + natsURL,
		"SSL_CERT_FILE=" + certFile,
		"DEFENDER_API_URL=" + emu.URL,
		"AZURE_AUTHORITY_HOST=" + emu.AuthorityHost(),
		"AZURE_TENANT_ID=" + emu.TenantID(),
		"AZURE_CLIENT_ID=" + emu.ClientID(),
		"AZURE_CLIENT_SECRET=" + emu.ClientSecret(),
		"HTTP_LISTEN=",
		"LOG_FORMAT=json",
	}, extra...)
}
