package main

import (
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/message"

	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// emulateOutput is a stdout that tests can read while the command writes.
type emulateOutput struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (o *emulateOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	return o.buf.Write(p)
}

func (o *emulateOutput) Writes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writes
}

func (o *emulateOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

var listeningOn = regexp.MustCompile(`listening on (https://\S+)`)

// startEmulate runs emulate with args until the test ends; it returns the
// URL it listens on, its stdout and a function that stops it and returns
// its error.
func startEmulate(t *testing.T, args ...string) (base string, stdout *emulateOutput, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stdout = &emulateOutput{}
	var stderr bytes.Buffer
	e := &env{lookupEnv: config.MapEnv(nil), stdin: strings.NewReader(""), stdout: stdout, stderr: &stderr}
	done := make(chan error, 1)
	go func() { done <- runEmulate(ctx, e, append([]string{"-listen", "127.0.0.1:0"}, args...)) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("emulate did not stop")
			return nil
		}
	}
	deadline := time.After(10 * time.Second)
	for {
		if m := listeningOn.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stdout, stop
		}
		select {
		case err := <-done:
			t.Fatalf("emulate ended: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("emulate did not start:\n%s", stdout.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// trustingClient is an HTTP client that trusts the certificate in file, as
// SSL_CERT_FILE does.
func trustingClient(t *testing.T, file string) *http.Client {
	t.Helper()
	pemData, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in the -tls-cert-out file")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

func TestEmulateServesUntilCanceled(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "emulator.pem")
	dataFile := filepath.Join(dir, "data.json")
	if err := os.WriteFile(dataFile, []byte(`{"alerts":{"from_file_1":["file.example"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base, stdout, stop := startEmulate(t, "-tls-cert-out", certFile, "-quota", "2/1h", "-data", dataFile)

	// The banner comes in one write: a script that reads until "listening
	// on" has the exports too.
	out := stdout.String()
	if n := stdout.Writes(); n != 1 {
		t.Errorf("the banner came in %d writes, want 1", n)
	}
	for _, want := range []string{
		"export DEFENDER_API_URL=" + base,
		"export AZURE_AUTHORITY_HOST=" + base + "/",
		"export AZURE_TENANT_ID=" + emulator.DefaultTenantID,
		"export AZURE_CLIENT_ID=" + emulator.DefaultClientID,
		"export AZURE_CLIENT_SECRET=" + emulator.DefaultClientSecret,
		"export SSL_CERT_FILE=" + certFile,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	hc := trustingClient(t, certFile)
	cred, err := connector.NewCredential(connector.CredentialConfig{
		TenantID: emulator.DefaultTenantID, ClientID: emulator.DefaultClientID, ClientSecret: emulator.DefaultClientSecret,
		AuthorityHost: base + "/", Transport: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	client, err := connector.New(connector.Graph, base, cred, emulator.GraphScope, connector.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Domains(t.Context(), "da637472900382838869_1364969609")
	if err != nil || !reflect.DeepEqual(res.Domains, []string{"www.example.com", "cdn.example.net"}) {
		t.Fatalf("seed alert: %+v, %v", res, err)
	}
	res, err = client.Domains(t.Context(), "from_file_1")
	if err != nil || !reflect.DeepEqual(res.Domains, []string{"file.example"}) {
		t.Fatalf("alert of the data file: %+v, %v", res, err)
	}
	_, err = client.Domains(t.Context(), "da637472900382838869_1364969609")
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Kind != message.KindThrottled || ce.RetryAfter < 59*time.Minute {
		t.Fatalf("over the quota: %v, want throttled with Retry-After about an hour", err)
	}

	if err := stop(); err != nil {
		t.Errorf("emulate = %v, want nil after the cancel", err)
	}
	if !strings.Contains(stdout.String(), "stopped") {
		t.Error("no stop message")
	}
}

// TestEmulateServesTenants: with -tenants, the tenants file and secrets
// emulate prints are a TENANTS_FILE that config loads, and each tenant's
// credential reads alerts with a token of its own tenant.
func TestEmulateServesTenants(t *testing.T) {
	dir := t.TempDir()
	certFile, tenantsFile := filepath.Join(dir, "emulator.pem"), filepath.Join(dir, "tenants.yaml")
	base, stdout, stop := startEmulate(t, "-tenants", "contoso,9-fabrikam", "-tls-cert-out", certFile, "-tenants-file-out", tenantsFile)
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`export (\w+)=(\S+)`).FindAllStringSubmatch(stdout.String(), -1) {
		vars[m[1]] = m[2]
	}
	if vars["TENANTS_FILE"] != tenantsFile || vars["DEFENDER_API_URL"] != base || vars["AZURE_TENANT_ID"] != "" {
		t.Fatalf("exports %v, want TENANTS_FILE and DEFENDER_API_URL and no AZURE_TENANT_ID:\n%s", vars, stdout)
	}
	cfg, err := config.Load(config.MapEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := config.LoadTenants(tenantsFile, cfg, config.MapEnv(vars))
	if err != nil || len(tenants) != 2 {
		t.Fatalf("LoadTenants = %d tenants, %v", len(tenants), err)
	}
	hc := trustingClient(t, certFile)
	for _, tn := range tenants {
		tn.Credential.Transport = hc
		cred, err := connector.NewCredential(tn.Credential)
		if err != nil {
			t.Fatal(err)
		}
		client, err := connector.New(tn.API, tn.APIURL, cred, tn.Scope, connector.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := client.Domains(t.Context(), "da637472900382838869_1364969609"); err != nil || len(res.Domains) == 0 {
			t.Errorf("%s: %+v, %v", tn.Name, res, err)
		}
	}
	if tenants[0].Credential.TenantID == tenants[1].Credential.TenantID {
		t.Errorf("both tenants have the tenant ID %s", tenants[0].Credential.TenantID)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

func TestEmulateUsageErrors(t *testing.T) {
	many := "t0"
	for i := range maxEmulatedTenants {
		many += ",t" + strconv.Itoa(i+1)
	}
	for _, args := range [][]string{
		{"-quota", "lots"},
		{"-fault-rate", "1.5"},
		{"-latency", "-1s"},
		{"-page-size", "-1"},
		{"-data", filepath.Join(t.TempDir(), "missing.json")},
		{"-nope"},
		{"extra"},
		{"-tenants", "Contoso"},
		{"-tenants", "a,a"},
		{"-tenants-file-out", "x.yaml"},
		{"-tenants", many},
	} {
		var stderr bytes.Buffer
		e := &env{lookupEnv: config.MapEnv(nil), stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr}
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // arguments emulate wrongly accepts end it at once, with status 0
		if err := runEmulate(ctx, e, append([]string{"-listen", "127.0.0.1:0"}, args...)); exitStatus(err) != 2 {
			t.Errorf("emulate %v = %v, want exit status 2", args, err)
		}
	}
}
