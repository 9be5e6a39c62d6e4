package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

const emulateUsage = `emulate [flags]

Runs a fake Microsoft Graph security API, Defender for Endpoint API and
Entra ID token service on one HTTPS address, so pipelines can be tested
without a tenant. It speaks each real wire format: the v2.0 OpenID
configuration and token endpoint (client credentials; tokens whose roles
claim lists the granted permissions), GET /v1.0/security/alerts_v2/{id}
(Graph's alert object with typed evidence, Graph's error body) and GET
/api/alerts/{id}/domains (the endpoint API's list and error body), 429 with
Retry-After over its quota. Both APIs answer from one set of alerts; Graph
knows an ID without a product prefix only as "da" + ID. It prints the
settings to export, and runs until interrupted.

-tenants NAME,... serves one Entra tenant per name instead of one, each with
its own tenant ID, app registration, secret and alerts, and prints the
tenants file (TENANTS_FILE) and secrets that point serve at them.

A -data file maps alert IDs to their hosts:
  {"alerts": {"da637472900382838869_1364969609": ["www.example.com"]}}`

const emulateShutdownTimeout = 5 * time.Second

// emulation is what emulate was asked to serve: the flags, and the emulator's configuration they give.
type emulation struct {
	emulator.Config
	listen, quota, data, certOut, perms string
	tenants, tenantsOut                 string
	served                              []emulatedTenant
}

// handler checks the flags and builds one emulator, or one per name of -tenants.
func (m *emulation) handler() (emulator.Tenants, error) {
	var err error
	switch m.Quota, err = connector.ParseLimits(m.quota); {
	case err != nil:
		return nil, usageErrorf("emulate: -quota: %v", err)
	case m.FaultRate < 0 || m.FaultRate > 1:
		return nil, usageErrorf("emulate: -fault-rate must be between 0 and 1")
	case m.Latency < 0:
		return nil, usageErrorf("emulate: -latency must not be negative")
	case m.PageSize < 0:
		return nil, usageErrorf("emulate: -page-size must not be negative")
	case m.tenantsOut != "" && m.tenants == "":
		return nil, usageErrorf("emulate: -tenants-file-out needs -tenants")
	}
	m.Permissions, m.SeedData, m.FaultSeed = []string{}, true, time.Now().UnixNano()
	for p := range strings.SplitSeq(m.perms, ",") {
		if p = strings.TrimSpace(p); p != "" && m.perms != "none" {
			m.Permissions = append(m.Permissions, p)
		}
	}
	if m.served, err = emulatedTenants(m.tenants); err != nil {
		return nil, err
	}
	var data []byte
	if m.data != "" {
		if data, err = os.ReadFile(m.data); err != nil {
			return nil, usageErrorf("emulate: -data: %v", err)
		}
	}
	emus := make(emulator.Tenants, len(m.served))
	for i, t := range m.served {
		m.TenantID, m.ClientID, m.ClientSecret = t.tenantID, t.clientID, t.secret
		emus[i] = emulator.NewHandler(m.Config)
		if m.data == "" {
			continue
		}
		if err := emus[i].LoadData(bytes.NewReader(data)); err != nil {
			closeAll(emus[:i+1])
			return nil, usageErrorf("emulate: -data: %v", err)
		}
	}
	return emus, nil
}

func closeAll(emus emulator.Tenants) {
	for _, e := range emus {
		e.Close()
	}
}

// maxEmulatedTenants bounds -tenants: each tenant is an emulator of its own.
const maxEmulatedTenants = 100

// emulatedTenant is a tenant emulate serves; name is "" for the AZURE_* one.
type emulatedTenant struct{ name, tenantID, clientID, secret string }

// emulatedTenants are the tenants of -tenants, with IDs and a secret made from each name.
func emulatedTenants(names string) ([]emulatedTenant, error) {
	if names == "" {
		return []emulatedTenant{{"", emulator.DefaultTenantID, emulator.DefaultClientID, emulator.DefaultClientSecret}}, nil
	}
	var out []emulatedTenant
	for n := range strings.SplitSeq(names, ",") {
		n = strings.TrimSpace(n)
		if !config.ValidTenantName(n) || slices.ContainsFunc(out, func(t emulatedTenant) bool { return t.name == n }) {
			return nil, usageErrorf("emulate: -tenants: %q is not a tenant name (lower-case letters, digits and -), or is given twice", n)
		}
		out = append(out, emulatedTenant{n, guidOf(n + " tenant"), guidOf(n + " client"), "emulator-secret-" + n})
	}
	if len(out) > maxEmulatedTenants {
		return nil, usageErrorf("emulate: -tenants: %d names, at most %d", len(out), maxEmulatedTenants)
	}
	return out, nil
}

func guidOf(s string) string {
	b := sha256.Sum256([]byte("alert-domains emulate " + s))
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// secretEnv is the variable the tenants file names for t's secret.
func (t emulatedTenant) secretEnv() string {
	v := strings.ToUpper(strings.ReplaceAll(t.name, "-", "_")) + "_SECRET"
	if v[0] >= '0' && v[0] <= '9' { // a variable name starts with a letter
		return "TENANT_" + v
	}
	return v
}

func runEmulate(ctx context.Context, e *env, args []string) error {
	fs := e.flags("emulate")
	var m emulation
	fs.StringVar(&m.listen, "listen", "127.0.0.1:8443", "address to listen on (HTTPS)")
	fs.StringVar(&m.quota, "quota", "none", "the emulator's own quota, count/window,... (for example 100/1m,1500/1h); over it: 429 with Retry-After")
	fs.DurationVar(&m.Latency, "latency", 0, "delay of every domains call")
	fs.Float64Var(&m.FaultRate, "fault-rate", 0, "fraction (0 to 1) of domains calls answered 503")
	fs.StringVar(&m.data, "data", "", "JSON file of alerts and their hosts")
	fs.IntVar(&m.PageSize, "page-size", 0, "split answers of more hosts than this into @odata.nextLink pages (0: never)")
	fs.StringVar(&m.certOut, "tls-cert-out", "", "write the emulator's self-signed certificate (PEM) here, for SSL_CERT_FILE")
	fs.StringVar(&m.tenants, "tenants", "", "serve one tenant per name, comma separated (for example contoso,fabrikam), for a TENANTS_FILE")
	fs.StringVar(&m.tenantsOut, "tenants-file-out", "", "with -tenants: write the tenants file here, for TENANTS_FILE")
	fs.StringVar(&m.perms, "permissions", emulator.GraphPermission+","+emulator.MDEPermission, "application permissions granted to the app, comma separated (none: no consent); an API answers 403 without its own")
	if err := parse(fs, args, true); err != nil {
		return err
	}
	emus, err := m.handler()
	if err != nil {
		return err
	}
	defer closeAll(emus)
	if m.tenantsOut != "" {
		if err := os.WriteFile(m.tenantsOut, []byte(m.tenantsFile()), 0o644); err != nil {
			return fmt.Errorf("emulate: -tenants-file-out: %w", err)
		}
	}
	srv, ln, base, err := m.listenTLS(e, emus)
	if err != nil {
		return fmt.Errorf("emulate: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	m.printSettings(e.stdout, base)
	select {
	case err := <-served:
		return fmt.Errorf("emulate: %w", err)
	case <-ctx.Done():
	}
	closeAll(emus) // ends delayed and slow answers, so shutdown does not wait on them
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emulateShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("emulate: shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("emulate: %w", err)
	}
	fmt.Fprintln(e.stdout, "alert-domains emulate: stopped")
	return nil
}

// listenTLS listens on -listen with a self-signed certificate; base is the URL clients dial.
func (m *emulation) listenTLS(e *env, emus emulator.Tenants) (srv *http.Server, ln net.Listener, base string, err error) {
	if ln, err = net.Listen("tcp", m.listen); err != nil {
		return nil, nil, "", err
	}
	tcp, _ := ln.Addr().(*net.TCPAddr)
	hosts, ip := []string{"127.0.0.1", "::1", "localhost"}, net.IPv4(127, 0, 0, 1)
	if tcp.IP != nil && !tcp.IP.IsUnspecified() {
		ip, hosts = tcp.IP, append(hosts, tcp.IP.String())
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	cert, certPEM, err := emulator.SelfSigned(hosts...)
	if err == nil && m.certOut != "" {
		if err = os.WriteFile(m.certOut, certPEM, 0o644); err != nil {
			err = fmt.Errorf("-tls-cert-out: %w", err)
		}
	}
	if err != nil {
		ln.Close()
		return nil, nil, "", err
	}
	srv = &http.Server{
		Handler:           emus,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(e.stderr, "alert-domains emulate: ", 0),
	}
	return srv, ln, "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port)), nil
}

// printSettings writes the banner in one write, so a script waiting for "listening on" sees it whole.
func (m *emulation) printSettings(out io.Writer, base string) {
	w := &bytes.Buffer{}
	fmt.Fprintf(w, "alert-domains emulate: Microsoft Graph, Defender for Endpoint API and Entra ID emulator listening on %s\n", base)
	for _, t := range m.served {
		fmt.Fprintf(w, "  tenant       %s\n  client       %s\n  secret       %s\n", strings.TrimSpace(t.tenantID+" "+t.name), t.clientID, t.secret)
	}
	fmt.Fprintf(w, "  permissions  %s\n  quota        %s (per API)\n  alerts       %d sample alerts (for example da637472900382838869_1364969609)\n\n",
		cmp.Or(strings.Join(m.Permissions, ", "), "none"), quotaText(m.Quota), len(emulator.SeedData()))
	if where := "to save as tenants.yaml"; m.tenants != "" {
		if m.tenantsOut != "" {
			where = "written to " + m.tenantsOut
		}
		file := "  " + strings.ReplaceAll(strings.TrimSuffix(m.tenantsFile(), "\n"), "\n", "\n  ")
		fmt.Fprintf(w, "Each tenant has its own alerts and quota. The tenants file for them, %s:\n%s\n\n", where, file)
	}
	fmt.Fprintln(w, "Point alert-domains (serve, get, demo) at it (DEFENDER_API=graph, the default, or mde):")
	fmt.Fprintf(w, "  export DEFENDER_API_URL=%s\n  export AZURE_AUTHORITY_HOST=%s/\n", base, base)
	if t := m.served[0]; m.tenants == "" {
		fmt.Fprintf(w, "  export AZURE_TENANT_ID=%s\n  export AZURE_CLIENT_ID=%s\n  export AZURE_CLIENT_SECRET=%s\n", t.tenantID, t.clientID, t.secret)
	} else {
		fmt.Fprintf(w, "  export TENANTS_FILE=%s\n", cmp.Or(m.tenantsOut, "tenants.yaml"))
		for _, t := range m.served {
			fmt.Fprintf(w, "  export %s=%s\n", t.secretEnv(), t.secret)
		}
	}
	if m.certOut != "" {
		fmt.Fprintf(w, "  export SSL_CERT_FILE=%s\n", m.certOut)
	} else {
		fmt.Fprintln(w, "  (the certificate is self-signed: run with -tls-cert-out FILE and export SSL_CERT_FILE=FILE)")
	}
	fmt.Fprintln(w)
	_, _ = out.Write(w.Bytes())
}

func (m *emulation) tenantsFile() string {
	var b strings.Builder
	b.WriteString("tenants:\n")
	for _, t := range m.served {
		fmt.Fprintf(&b, "  - name: %s\n    tenantId: %s\n    clientId: %s\n    clientSecretEnv: %s\n", t.name, t.tenantID, t.clientID, t.secretEnv())
	}
	return b.String()
}
