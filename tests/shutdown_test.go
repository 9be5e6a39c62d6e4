package tests

// End-to-end tests of the shutdown: quota waiters are handed back at once,
// the whole shutdown is bounded, a second signal exits at once, and a
// signal during start-up is a clean stop.

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestShutdownHandsBackQuotaWaitersAtOnce: requests that only wait for the
// quota are handed back at SIGTERM, not held to SHUTDOWN_TIMEOUT, and are
// not failed for it.
func TestShutdownHandsBackQuotaWaitersAtOnce(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	svc := testenv.StartServe(t, serviceEnv(emu, cert, natsURL,
		"DEFENDER_RATE_LIMITS=1/1m", "CONCURRENCY=4", "SHUTDOWN_TIMEOUT=20s"))
	for _, id := range []string{"alert_q1", "alert_q2", "alert_q3"} {
		publish(t, js, id, nil)
	}
	waitResults(t, js, 1, 30*time.Second)
	// The other two are in hand, waiting for the quota.
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		c, err := js.Consumer(t.Context(), requestStream, consumerName)
		return err == nil && c.CachedInfo().NumAckPending == 2
	}, "two requests waiting for the quota")

	start := time.Now()
	if err := svc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := svc.Wait(30 * time.Second)
	took := time.Since(start)
	t.Logf("exit %d after %v", code, took.Round(time.Millisecond))
	if err != nil || code != 0 {
		t.Fatalf("exit %d (%v), want 0\n%s", code, err, svc.Output())
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v with SHUTDOWN_TIMEOUT=20s: quota waiters were held", took)
	}
	if !strings.Contains(svc.Output(), `"msg":"handed back requests waiting for the quota","requests":2`) {
		t.Errorf("no line about the handed-back requests:\n%s", svc.Output())
	}
	if rs := results(t, js); len(rs) != 1 {
		t.Errorf("%d results stored, want 1 (the waiters are not failed for the shutdown)", len(rs))
	}
	// Handed back, not lost: the next replica answers them.
	next := testenv.StartServe(t, serviceEnv(emu, cert, natsURL, "DEFENDER_RATE_LIMITS=none"))
	waitResults(t, js, 3, 30*time.Second)
	requestsAllAcked(t, js, 10*time.Second)
	next.Stop(t)
}

// stuckHookService is a service whose success hook outlives any shutdown.
func stuckHookService(t *testing.T, shutdownTimeout string) *testenv.Process {
	t.Helper()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	_, natsURL := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, natsURL)
	svc := testenv.StartServe(t, serviceEnv(emu, cert, natsURL,
		"ON_SUCCESS_EXEC=sleep 60", "EXEC_TIMEOUT=60s", "SHUTDOWN_TIMEOUT="+shutdownTimeout))
	publish(t, js, knownAlert, nil)
	waitResults(t, js, 1, 30*time.Second) // the hook runs now
	return svc
}

// TestShutdownIsBounded: a hook that does not end cannot hold the
// shutdown: it ends within SHUTDOWN_TIMEOUT plus a few seconds.
func TestShutdownIsBounded(t *testing.T) {
	t.Parallel()
	svc := stuckHookService(t, "2s")
	start := time.Now()
	if err := svc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := svc.Wait(70 * time.Second)
	took := time.Since(start)
	t.Logf("exit %d after %v", code, took.Round(time.Millisecond))
	if err != nil || code != 0 {
		t.Fatalf("exit %d (%v), want 0\n%s", code, err, svc.Output())
	}
	if took > 2*time.Second+5*time.Second+time.Second {
		t.Errorf("shutdown took %v, want at most SHUTDOWN_TIMEOUT (2s) + 5s", took)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during the shutdown ends
// the process at once, with a non-zero status.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	svc := stuckHookService(t, "20s")
	if err := svc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"msg":"waiting for in-flight requests"`, 10*time.Second)
	start := time.Now()
	if err := svc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := svc.Wait(10 * time.Second)
	if err != nil {
		t.Fatalf("still running after a second SIGTERM: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second || code == 0 {
		t.Errorf("exit %d after %v, want non-zero within 2s", code, took)
	}
	if !strings.Contains(svc.Output(), "second signal") {
		t.Errorf("no word of the second signal:\n%s", svc.Output())
	}
}

// TestSignalDuringStartupExitsZero: SIGTERM while the service is still
// connecting is a clean stop: exit 0.
func TestSignalDuringStartupExitsZero(t *testing.T) {
	t.Parallel()
	// A server that accepts connections and never answers: connecting hangs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	emu, cert := testenv.StartEmulator(t, emulator.Config{})
	svc := testenv.StartService(t, testenv.BuildBinary(t), serviceEnv(emu, cert, "nats://"+ln.Addr().String()), "serve")
	select {
	case c := <-accepted:
		accepted <- c
	case <-time.After(10 * time.Second):
		t.Fatalf("serve never connected\n%s", svc.Output())
	}
	if err := svc.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code, err := svc.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("exit %d (%v), want 0\n%s", code, err, svc.Output())
	}
}
