package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

const emulateSynopsis = `emulate [flags]

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

A -data file maps alert IDs to their hosts:
  {"alerts": {"da637472900382838869_1364969609": ["www.example.com"]}}`

// emulateShutdownTimeout bounds the graceful shutdown of the emulator.
const emulateShutdownTimeout = 5 * time.Second

func runEmulate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "emulate", emulateSynopsis)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on (HTTPS)")
	quota := fs.String("quota", "none", "the emulator's own quota, count/window,... (for example 100/1m,1500/1h); over it: 429 with Retry-After")
	latency := fs.Duration("latency", 0, "delay of every domains call")
	faultRate := fs.Float64("fault-rate", 0, "fraction (0 to 1) of domains calls answered 503")
	dataFile := fs.String("data", "", "JSON file of alerts and their hosts")
	anyAlert := fs.Bool("any-alert", false, "answer every valid unknown alert ID with 1 to 3 made-up hosts instead of 404")
	seed := fs.Bool("seed", true, "include the built-in sample alerts")
	pageSize := fs.Int("page-size", 0, "split answers of more hosts than this into @odata.nextLink pages (0: never)")
	certOut := fs.String("tls-cert-out", "", "write the emulator's self-signed certificate (PEM) here, for SSL_CERT_FILE")
	perms := fs.String("permissions", emulator.GraphPermission+","+emulator.MDEPermission, "application permissions granted to the app, comma separated (none: no consent); an API answers 403 without its own")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("emulate takes no arguments")
	}
	limits, err := connector.ParseLimits(*quota)
	if err != nil {
		return usageErrorf("emulate: -quota: %v", err)
	}
	switch {
	case *faultRate < 0 || *faultRate > 1:
		return usageErrorf("emulate: -fault-rate must be between 0 and 1")
	case *latency < 0:
		return usageErrorf("emulate: -latency must not be negative")
	case *pageSize < 0:
		return usageErrorf("emulate: -page-size must not be negative")
	}

	granted := []string{}
	if *perms != "none" {
		for p := range strings.SplitSeq(*perms, ",") {
			if p = strings.TrimSpace(p); p != "" {
				granted = append(granted, p)
			}
		}
	}
	opts := []emulator.Option{
		emulator.WithPermissions(granted...),
		emulator.WithQuota(limits...),
		emulator.WithLatency(*latency),
		emulator.WithFaultRate(*faultRate, time.Now().UnixNano()),
		emulator.WithPageSize(*pageSize),
	}
	if *seed {
		opts = append(opts, emulator.WithSeedData())
	}
	if *anyAlert {
		opts = append(opts, emulator.WithAnyAlert())
	}
	emu := emulator.NewHandler(opts...)
	defer emu.Close()
	if *dataFile != "" {
		if err := loadEmulatorData(emu, *dataFile); err != nil {
			return usageErrorf("emulate: -data: %v", err)
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("emulate: %w", err)
	}
	base := "https://" + reachableAddr(ln.Addr())
	cert, certPEM, err := emulator.SelfSigned(certHosts(ln.Addr())...)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("emulate: %w", err)
	}
	if *certOut != "" {
		if err := os.WriteFile(*certOut, certPEM, 0o644); err != nil {
			_ = ln.Close()
			return fmt.Errorf("emulate: -tls-cert-out: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           emu,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(e.stderr, "alert-domains emulate: ", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()

	printEmulatorSettings(e.stdout, emu, base, limits, granted, *certOut, *seed, *anyAlert)

	select {
	case err := <-served:
		return fmt.Errorf("emulate: %w", err)
	case <-ctx.Done():
	}
	emu.Close() // ends delayed and slow answers, so shutdown does not wait on them
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

func loadEmulatorData(emu *emulator.Emulator, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return emu.LoadData(f)
}

// reachableAddr is addr as a client dials it: a wildcard listen address
// becomes loopback.
func reachableAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// certHosts are the names the certificate is valid for: loopback, and the
// listen address when it is a specific one.
func certHosts(addr net.Addr) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP != nil && !tcp.IP.IsUnspecified() && !tcp.IP.IsLoopback() {
		hosts = append(hosts, tcp.IP.String())
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	return hosts
}

// printEmulatorSettings writes the banner to out in one write, so that a
// reader of the output (a script waiting for "listening on") sees it whole.
func printEmulatorSettings(out io.Writer, emu *emulator.Emulator, base string, limits []connector.Limit, granted []string, certOut string, seed, anyAlert bool) {
	w := &bytes.Buffer{}
	quota := "none"
	if len(limits) > 0 {
		parts := make([]string, len(limits))
		for i, l := range limits {
			parts[i] = l.String()
		}
		quota = strings.Join(parts, ",")
	}
	var alerts []string
	if seed {
		alerts = append(alerts, fmt.Sprintf("%d sample alerts (for example da637472900382838869_1364969609)", len(emulator.SeedData())))
	}
	if anyAlert {
		alerts = append(alerts, "any other valid ID answers with made-up hosts")
	}
	if len(alerts) == 0 {
		alerts = append(alerts, "only those of -data")
	}
	consent := strings.Join(granted, ", ")
	if consent == "" {
		consent = "none"
	}
	fmt.Fprintf(w, "alert-domains emulate: Microsoft Graph, Defender for Endpoint API and Entra ID emulator listening on %s\n", base)
	fmt.Fprintf(w, "  tenant       %s\n  client       %s\n  secret       %s\n  permissions  %s\n  quota        %s (per API)\n  alerts       %s\n\n",
		emu.TenantID(), emu.ClientID(), emu.ClientSecret(), consent, quota, strings.Join(alerts, "; "))
	fmt.Fprintln(w, "Point alert-domains (serve, get, demo) at it (DEFENDER_API=graph, the default, or mde):")
	fmt.Fprintf(w, "  export DEFENDER_API_URL=%s\n", base)
	fmt.Fprintf(w, "  export AZURE_AUTHORITY_HOST=%s/\n", base)
	fmt.Fprintf(w, "  export AZURE_TENANT_ID=%s\n", emu.TenantID())
	fmt.Fprintf(w, "  export AZURE_CLIENT_ID=%s\n", emu.ClientID())
	fmt.Fprintf(w, "  export AZURE_CLIENT_SECRET=%s\n", emu.ClientSecret())
	if certOut != "" {
		fmt.Fprintf(w, "  export SSL_CERT_FILE=%s\n", certOut)
	} else {
		fmt.Fprintln(w, "  (the certificate is self-signed: run with -tls-cert-out FILE and export SSL_CERT_FILE=FILE)")
	}
	fmt.Fprintln(w)
	_, _ = out.Write(w.Bytes())
}
