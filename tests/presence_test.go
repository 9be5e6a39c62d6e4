package tests

import (
	"strconv"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestStatusListsReplicas: two serve replicas on one consumer; status lists
// both, by process ID, as bound; once one has stopped, only the other.
func TestStatusListsReplicas(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts nats-server and two alert-domains processes")
	}
	ns := testenv.StartNATS(t)
	emu, cert := testenv.StartEmulator(t, emulator.Config{})
	env := serviceEnv(emu, cert, ns.URL(), "CONCURRENCY=3", "LOG_LEVEL=info")
	a := testenv.StartServe(t, env)
	b := testenv.StartServe(t, env)

	code, out := opsCommand(t, env, "status")
	if code != 0 {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "REPLICAS: 2 answered, 2 bound (consumer alert-domains: ") {
		t.Errorf("status does not count two bound replicas:\n%s", out)
	}
	for _, p := range []*testenv.Process{a, b} {
		if f := strings.Fields(replicaLine(out, p.PID())); len(f) != 5 || f[3] != "3" || f[4] != "yes" {
			t.Errorf("replica %d: %q, want it listed with CONCURRENCY 3 as bound:\n%s", p.PID(), f, out)
		}
	}

	b.Stop(t)
	code, out = opsCommand(t, env, "status")
	if code != 0 {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "REPLICAS: 1 answered, 1 bound") || replicaLine(out, a.PID()) == "" || replicaLine(out, b.PID()) != "" {
		t.Errorf("after replica %d stopped, status should list %d alone:\n%s", b.PID(), a.PID(), out)
	}
}

// replicaLine is the line of the status screen's replicas table for the
// process pid, or "".
func replicaLine(out string, pid int) string {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 5 && f[1] == strconv.Itoa(pid) {
			return strings.TrimRight(line, "\n")
		}
	}
	return ""
}
