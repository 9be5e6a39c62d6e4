package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector/defendertest"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestGetUntrustedCertificate (issue 8.10): `get` against an Entra ID and
// Defender whose certificate is not trusted ends in seconds, naming the
// certificate problem, though RETRY_MAX_ELAPSED is ten minutes.
func TestGetUntrustedCertificate(t *testing.T) {
	emu, _ := emulator(t, defendertest.WithSeedData())
	// Trust another certificate than the emulator's.
	_, otherPEM, err := defendertest.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	env := testenv.ServiceEnv(emu, other, "nats://127.0.0.1:1", "RETRY_MAX_ELAPSED=10m", "RETRY_INITIAL_INTERVAL=1s")
	bin := testenv.BuildBinary(t)
	start := time.Now()
	p := testenv.StartService(t, bin, env, "get", "da637472900382838869_1364969609")
	code, err := p.Wait(2 * time.Minute)
	took := time.Since(start)
	out := p.Output()
	if err != nil || code != 1 {
		t.Fatalf("get: exit %d (%v), want 1\n%s", code, err, out)
	}
	t.Logf("get ended in %s:\n%s", took, out)
	if took > 20*time.Second {
		t.Errorf("get took %s, want seconds", took)
	}
	for _, want := range []string{`"kind":"unavailable"`, "entra id unreachable: tls certificate signed by an unknown authority"} {
		if !strings.Contains(out, want) {
			t.Errorf("get output lacks %q:\n%s", want, out)
		}
	}
}
