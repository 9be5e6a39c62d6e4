package testenv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

func TestBuildBinary(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t)
	if again := testenv.BuildBinary(t); again != bin {
		t.Errorf("second BuildBinary = %q, want %q", again, bin)
	}
	p := testenv.StartService(t, bin, nil, "help")
	code, err := p.Wait(30 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("alert-domains help = %d, %v; want 0, nil; output:\n%s", code, err, p.Output())
	}
	if !strings.Contains(p.Output(), "serve") {
		t.Errorf("alert-domains help does not list serve:\n%s", p.Output())
	}
}

func TestNATSServerBinary(t *testing.T) {
	t.Parallel()
	bin := testenv.NATSServerBinary(t)
	p := testenv.StartService(t, bin, nil, "--version")
	if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("nats-server --version = %d, %v; output:\n%s", code, err, p.Output())
	}
	p.WaitForLine(t, "nats-server: v2.", time.Second)
}
