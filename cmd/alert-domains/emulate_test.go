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

func TestEmulateServesUntilCanceled(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "emulator.pem")
	dataFile := filepath.Join(dir, "data.json")
	if err := os.WriteFile(dataFile, []byte(`{"alerts":{"from_file_1":["file.example"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &emulateOutput{}
	var stderr bytes.Buffer
	e := &env{lookupEnv: config.MapEnv(nil), stdin: strings.NewReader(""), stdout: stdout, stderr: &stderr}
	done := make(chan error, 1)
	go func() {
		done <- runEmulate(ctx, e, []string{"-listen", "127.0.0.1:0", "-tls-cert-out", certFile, "-quota", "2/1h", "-data", dataFile})
	}()

	var base string
	deadline := time.After(10 * time.Second)
	for base == "" {
		if m := listeningOn.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("emulate ended: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("emulate did not start:\n%s", stdout.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
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

	// A client that trusts the written certificate, as SSL_CERT_FILE does.
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in the -tls-cert-out file")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer hc.CloseIdleConnections()
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

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("emulate = %v, want nil after the cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulate did not stop")
	}
	if !strings.Contains(stdout.String(), "stopped") {
		t.Error("no stop message")
	}
}

func TestEmulateUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-quota", "lots"},
		{"-fault-rate", "1.5"},
		{"-latency", "-1s"},
		{"-page-size", "-1"},
		{"-data", filepath.Join(t.TempDir(), "missing.json")},
		{"-nope"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		e := &env{lookupEnv: config.MapEnv(nil), stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr}
		if err := runEmulate(t.Context(), e, args); exitStatus(err) != 2 {
			t.Errorf("emulate %v = %v, want exit status 2", args, err)
		}
	}
}
