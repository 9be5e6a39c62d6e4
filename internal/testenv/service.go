package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	// serveReadyTimeout bounds the start of `alert-domains serve` to ready.
	serveReadyTimeout = 30 * time.Second
	// stopTimeout bounds a graceful stop: the service's own shutdown
	// time-out (30 s by default) and a margin.
	stopTimeout = 40 * time.Second
)

// WriteCertificate writes cert as PEM to a file of its own, for a service
// process to trust with SSL_CERT_FILE, and returns the file's path.
func WriteCertificate(tb testing.TB, cert *x509.Certificate) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "emulator.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		tb.Fatalf("testenv: certificate: %v", err)
	}
	return path
}

// StartServe starts `alert-domains serve` ([BuildBinary]) with env, as
// [StartService] does, and waits until it logs that it is ready, which it
// does at LOG_LEVEL info or debug; see [Process.WaitHTTPReady] for quieter
// levels.
func StartServe(tb testing.TB, env []string) *Process {
	tb.Helper()
	p := StartService(tb, BuildBinary(tb), env, "serve")
	p.WaitForLine(tb, `"msg":"ready"`, serveReadyTimeout)
	return p
}

// Run runs bin with env and args to its end, waiting up to timeout, and
// returns its exit status and output. It fails the test when the process
// does not end in time.
func Run(tb testing.TB, bin string, env []string, timeout time.Duration, args ...string) (exitCode int, output string) {
	tb.Helper()
	p := StartService(tb, bin, env, args...)
	code, err := p.Wait(timeout)
	if err != nil {
		tb.Fatalf("testenv: %s %v: %v\n%s", p.name, args, err, p.Output())
	}
	return code, p.Output()
}

// Stop sends SIGTERM and waits up to 40 seconds for the process to exit,
// and fails the test unless it exits with status 0. It does nothing when
// the process has already exited.
func (p *Process) Stop(tb testing.TB) {
	tb.Helper()
	if err := p.Signal(syscall.SIGTERM); errors.Is(err, os.ErrProcessDone) {
		return
	} else if err != nil {
		tb.Fatalf("testenv: stop %s: %v", p.name, err)
	}
	if code, err := p.Wait(stopTimeout); err != nil || code != 0 {
		tb.Fatalf("testenv: %s exit status %d (%v), want 0; output:\n%s", p.name, code, err, p.Output())
	}
}

// WaitHTTPReady polls url (a /readyz) until it answers 200, and fails the
// test when the process exits first or timeout passes.
func (p *Process) WaitHTTPReady(tb testing.TB, url string, timeout time.Duration) {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	exited := false
	Eventually(tb, timeout, 10*time.Millisecond, func() bool {
		select {
		case <-p.done:
			exited = true
			return true
		default:
		}
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "%s ready at %s", p.name, url)
	if exited {
		tb.Fatalf("testenv: %s exited (%v) before it was ready; output:\n%s", p.name, p.cmd.ProcessState, p.Output())
	}
}
