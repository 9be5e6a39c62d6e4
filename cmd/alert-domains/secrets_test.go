package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// pasted looks like an Entra client secret pasted where it does not belong.
const pasted = "Xq8Q~PASTED.s3cret_value-0123456789abcdefXYZ"

// TestNoSecretInOutput: a secret pasted into any AZURE_* or NATS_*
// variable, or into any field or key of the tenants file, never appears in
// what serve or get print, whatever they make of it: a configuration error,
// a refused token, a failed connection.
func TestNoSecretInOutput(t *testing.T) {
	bin := testenv.BuildBinary(t)
	emu, cert := testenv.StartEmulator(t, emulator.Config{})
	dir := t.TempDir()
	const unreachable = "nats://127.0.0.1:1"
	var cases [][]string
	for _, v := range config.Variables() {
		if (!strings.HasPrefix(v.Name, "AZURE_") && !strings.HasPrefix(v.Name, "NATS_")) || v.Name == "NATS_EMBEDDED_STORE_DIR" {
			continue // the store directory holds no credential: the service creates it and names it in its log
		}
		cases = append(cases, testenv.ServiceEnv(emu, cert, unreachable, "NATS_USER=u", v.Name+"="+pasted))
	}
	for _, url := range []string{"u:" + pasted + "@127.0.0.1:1", "nats://u:'" + pasted + "@127.0.0.1:1"} { // a password in the URL
		cases = append(cases, testenv.ServiceEnv(emu, cert, url))
	}
	notCert := filepath.Join(dir, pasted) // a file that is no certificate, its name the secret
	if err := os.WriteFile(notCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, testenv.ServiceEnv(emu, cert, unreachable, "AZURE_CLIENT_SECRET=", "AZURE_CLIENT_CERTIFICATE_PATH="+notCert),
		testenv.ServiceEnv(emu, cert, unreachable, "DEFENDER_API_URL="+emu.URL+"/?sig="+pasted))
	for i, entry := range []string{`"certificateFile": "` + notCert + `"`, `"clientSecretEnv": "EMU_SECRET", "apiUrl": "https://graph.example/?sig=` + pasted + `"`} {
		file := filepath.Join(dir, fmt.Sprintf("tenants-field-%d.yaml", i))
		doc := fmt.Sprintf("tenants:\n  - {\"name\": \"contoso\", \"tenantId\": %q, \"clientId\": %q, %s}\n", emu.TenantID(), emu.ClientID(), entry)
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, fileEnv(emu, cert, unreachable, file))
	}
	for i, doc := range tenantsFilesWith(emu, pasted) {
		file := filepath.Join(dir, fmt.Sprintf("tenants-%d.yaml", i))
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, fileEnv(emu, cert, unreachable, file))
	}
	for _, env := range cases {
		name, _, _ := strings.Cut(env[len(env)-1], "=") // the variable, or TENANTS_FILE
		for _, args := range [][]string{{"serve"}, {"get", "da637472900382838869_1364969609"}} {
			p := testenv.StartService(t, bin, env, args...)
			code, err := p.Wait(60 * time.Second)
			if err != nil || (code == 0 && args[0] == "serve") {
				t.Errorf("%s with %s: exit %d, %v", args[0], name, code, err)
			}
			if strings.Contains(p.Output(), pasted) {
				t.Errorf("%s with the secret in %s shows it:\n%s", args[0], name, p.Output())
			}
		}
	}
}

// TestNoSecretInReloadLog: a tenants file that a reload refuses is logged
// without the secret it holds, in the JSON log.
func TestNoSecretInReloadLog(t *testing.T) {
	bin := testenv.BuildBinary(t)
	emu, cert := testenv.StartEmulator(t, emulator.Config{})
	_, natsURL := testenv.EmbeddedJetStream(t)
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	good := tenantsFilesWith(emu, "")[0]
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartService(t, bin, fileEnv(emu, cert, natsURL, file), "serve")
	p.WaitForLine(t, `"msg":"ready"`, 60*time.Second)
	for i, doc := range tenantsFilesWith(emu, pasted) {
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Count(p.Output(), "tenants file not reloaded") > i })
	}
	if out := p.Output(); strings.Contains(out, pasted) {
		t.Errorf("the log shows the secret:\n%s", out)
	}
}

// tenantsFilesWith are tenants files with secret in each field and as a key
// in turn (the first, with secret "", is valid).
func tenantsFilesWith(emu *emulator.Server, secret string) []string {
	fields := []string{"name", "tenantId", "clientId", "clientSecretFile", "clientSecretEnv", "certificateFile",
		"certificatePasswordFile", "federatedTokenFile", "managedIdentity", "api", "cloud", "apiUrl", "scope", "authorityHost", "rateLimits"}
	base := func() map[string]string {
		return map[string]string{"name": "contoso", "tenantId": emu.TenantID(), "clientId": emu.ClientID(), "clientSecretEnv": "EMU_SECRET"}
	}
	doc := func(entry map[string]string) string {
		var b strings.Builder
		b.WriteString("tenants:\n  -")
		for k, v := range entry {
			fmt.Fprintf(&b, " %q: %q\n   ", k, v)
		}
		return b.String()
	}
	if secret == "" {
		return []string{doc(base())}
	}
	docs := []string{doc(map[string]string{"name": "contoso", secret: "x"})}
	for _, f := range fields {
		entry := base()
		if strings.HasSuffix(f, "File") || f == "managedIdentity" {
			delete(entry, "clientSecretEnv")
		}
		entry[f] = secret
		docs = append(docs, doc(entry))
	}
	return docs
}

// fileEnv is the environment of a process with TENANTS_FILE file, whose
// tenants' secret is the emulator's in EMU_SECRET.
func fileEnv(emu *emulator.Server, cert, natsURL, file string) []string {
	return []string{"NATS_URL=" + natsURL, "SSL_CERT_FILE=" + cert, "DEFENDER_API_URL=" + emu.URL,
		"AZURE_AUTHORITY_HOST=" + emu.AuthorityHost(), "EMU_SECRET=" + emu.ClientSecret(), "HTTP_LISTEN=", "LOG_FORMAT=json",
		"TENANTS_FILE=" + file}
}

// waitFor polls cond until it holds, or fails the test after 30s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
		<-tick.C
	}
}
