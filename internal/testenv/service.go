package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	serveReadyTimeout = 30 * time.Second
	stopTimeout       = 40 * time.Second // the service's 30 s shutdown and a margin
)

// WriteCertificate writes cert as PEM to a new file for SSL_CERT_FILE and
// returns its path.
func WriteCertificate(tb testing.TB, cert *x509.Certificate) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "emulator.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		tb.Fatalf("testenv: certificate: %v", err)
	}
	return path
}

// StartServe starts `alert-domains serve` and waits for its "ready" log
// line (LOG_LEVEL info or debug; else see [Process.WaitHTTPReady]).
func StartServe(tb testing.TB, env []string) *Process {
	tb.Helper()
	p := StartService(tb, BuildBinary(tb), env, "serve")
	p.WaitForLine(tb, `"msg":"ready"`, serveReadyTimeout)
	return p
}

// Run runs bin to its end, failing the test after timeout, and returns its
// exit status and output.
func Run(tb testing.TB, bin string, env []string, timeout time.Duration, args ...string) (exitCode int, output string) {
	tb.Helper()
	p := StartService(tb, bin, env, args...)
	code, err := p.Wait(timeout)
	if err != nil {
		tb.Fatalf("testenv: %s %v: %v\n%s", p.name, args, err, p.Output())
	}
	return code, p.Output()
}

// Stop sends SIGTERM and fails the test unless the process exits 0 in time;
// it does nothing once the process has exited.
func (p *Process) Stop(tb testing.TB) {
	tb.Helper()
	if p.exited() {
		return
	}
	if err := p.stop(syscall.SIGTERM, stopTimeout); err != nil || p.cmd.ProcessState.ExitCode() != 0 {
		tb.Fatalf("testenv: %s exit status %d (%v), want 0; output:\n%s", p.name, p.cmd.ProcessState.ExitCode(), err, p.Output())
	}
}

// WaitHTTPReady polls url until it answers 200, failing the test if the
// process exits first or timeout passes.
func (p *Process) WaitHTTPReady(tb testing.TB, url string, timeout time.Duration) {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	exited := false
	Eventually(tb, timeout, 10*time.Millisecond, func() bool {
		if exited = p.exited(); exited {
			return true
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
