package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// helperEnv makes the test binary act as a child process in
// TestHelperProcess instead of running tests.
const helperEnv = "TESTENV_HELPER_PROCESS"

// TestHelperProcess is not a test: it is the child process started by the
// tests of StartService, behaving as its first argument after "--" says.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process")
	}
	args := os.Args
	for len(args) > 0 && args[0] != "--" {
		args = args[1:]
	}
	switch args[1] {
	case "lines":
		fmt.Println("first line")
		fmt.Fprintln(os.Stderr, "to stderr")
		fmt.Print("no newline at the end")
		os.Exit(3)
	case "env":
		fmt.Println("EXTRA=" + os.Getenv("EXTRA"))
		fmt.Println("HOME set: " + fmt.Sprint(os.Getenv("HOME") != ""))
		fmt.Println("LEAKED=" + os.Getenv(helperEnv+"_LEAK"))
		os.Exit(0)
	case "wait-signal":
		// Reports the signal it gets on standard output, then exits 0.
		ch := make(chan os.Signal, 1)
		signalNotify(ch)
		fmt.Println("ready")
		fmt.Println("got", <-ch)
		os.Exit(0)
	case "hang":
		fmt.Println("hanging")
		select {}
	}
	os.Exit(2)
}

func startHelper(t *testing.T, mode string, env ...string) *testenv.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// With the race detector, the child would wait a second before exiting.
	base := []string{helperEnv + "=1", "GORACE=atexit_sleep_ms=0"}
	return testenv.StartService(t, exe, append(base, env...),
		"-test.run=^TestHelperProcess$", "--", mode)
}

func TestStartServiceOutput(t *testing.T) {
	t.Parallel()
	p := startHelper(t, "lines")
	code, err := p.Wait(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	if got := p.WaitForLine(t, "no newline", time.Second); got != "no newline at the end" {
		t.Errorf("WaitForLine = %q", got)
	}
	for _, want := range []string{"first line\n", "to stderr\n", "no newline at the end\n"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("output %q lacks %q", p.Output(), want)
		}
	}
}

func TestStartServiceEnvironment(t *testing.T) {
	t.Setenv(helperEnv+"_LEAK", "yes")
	p := startHelper(t, "env", "EXTRA=value")
	if _, err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EXTRA=value", "HOME set: true"} {
		p.WaitForLine(t, want, time.Second)
	}
	if line := p.WaitForLine(t, "LEAKED=", time.Second); line != "LEAKED=" {
		t.Errorf("the test environment leaked into the child: %q", line)
	}
}

func TestStartServiceSignal(t *testing.T) {
	t.Parallel()
	p := startHelper(t, "wait-signal")
	p.WaitForLine(t, "ready", 10*time.Second)
	if rss, err := p.PeakRSS(); err != nil || rss <= 0 {
		t.Errorf("PeakRSS = %d, %v", rss, err)
	}
	if cpu, err := testenv.CPUTime(p.PID()); err != nil || cpu < 0 {
		t.Errorf("CPUTime = %v, %v", cpu, err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitForLine(t, "got terminated", 10*time.Second)
	code, err := p.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("Wait = %d, %v; want 0, nil", code, err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want %v", err, os.ErrProcessDone)
	}
}

func TestProcessStop(t *testing.T) {
	t.Parallel()
	p := startHelper(t, "wait-signal")
	p.WaitForLine(t, "ready", 10*time.Second)
	p.Stop(t)
	p.WaitForLine(t, "got terminated", time.Second)
	p.Stop(t) // exited: nothing to do
}

func TestRun(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, out := testenv.Run(t, exe, []string{helperEnv + "=1", "GORACE=atexit_sleep_ms=0"}, 10*time.Second,
		"-test.run=^TestHelperProcess$", "--", "lines")
	if code != 3 || !strings.Contains(out, "first line\n") {
		t.Errorf("Run = %d, %q; want 3 and the helper's lines", code, out)
	}
}

func TestProcessWaitHTTPReady(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable) // not ready yet
		}
	}))
	defer srv.Close()
	p := startHelper(t, "wait-signal")
	p.WaitHTTPReady(t, srv.URL, 10*time.Second)
	if n := asked.Load(); n != 3 {
		t.Errorf("asked %d times, want until the third answer, the first 200", n)
	}
	p.WaitForLine(t, "ready", 10*time.Second) // it takes signals from then on
	p.Stop(t)
}

func TestStartServiceKill(t *testing.T) {
	t.Parallel()
	p := startHelper(t, "hang")
	p.WaitForLine(t, "hanging", 10*time.Second)
	if _, err := p.Wait(10 * time.Millisecond); !errors.Is(err, testenv.ErrStillRunning) {
		t.Fatalf("Wait on a running process = %v, want %v", err, testenv.ErrStillRunning)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(10 * time.Second); err != nil || code != -1 {
		t.Errorf("Wait after kill = %d, %v; want -1, nil", code, err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after exit = %v", err)
	}
}

func TestEmbeddedJetStream(t *testing.T) {
	t.Parallel()
	s, url := testenv.EmbeddedJetStream(t)
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream is not enabled")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := createStream(t, js)
	publish(t, js, 0, 3)
	assertMessages(t, stream, 3)
}

func TestNATSRestartKeepsMessages(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	stream := createStream(t, js)
	publish(t, js, 0, 10)

	n.Restart(t)

	assertMessages(t, stream, 10)
	// The connection from before the restart reconnected and publishes again.
	publish(t, js, 10, 11)
	assertMessages(t, stream, 11)
}

func TestNATSKillThenRestart(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	pid := n.PID()
	js := n.JetStream(t)
	stream := createStream(t, js)
	publish(t, js, 0, 5)

	n.Kill(t)
	if _, err := testenv.CPUTime(pid); err == nil {
		t.Error("the killed nats-server still runs: CPUTime of it has no error")
	}
	n.Restart(t)
	if n.PID() == pid {
		t.Error("Restart did not start a new process")
	}

	assertMessages(t, stream, 5)
}

func TestNATSStopThenRestart(t *testing.T) {
	t.Parallel()
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	stream := createStream(t, js)
	publish(t, js, 0, 2)

	n.Stop(t)
	n.Restart(t)

	assertMessages(t, stream, 2)
}

func TestEventually(t *testing.T) {
	t.Parallel()
	calls := 0
	testenv.Eventually(t, 5*time.Second, time.Millisecond, func() bool {
		calls++
		return calls == 3
	}, "three calls")
	if calls != 3 {
		t.Errorf("calls = %d, want 3", calls)
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	if p := testenv.FreePort(t); p <= 0 || p > 65535 {
		t.Errorf("FreePort = %d", p)
	}
}

func createStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	stream, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name:     "TESTENV",
		Subjects: []string{"testenv.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// publish stores "message <from>" to "message <to-1>"; it retries while the
// client reconnects after a restart.
func publish(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		var err error
		testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err = js.Publish(ctx, "testenv.msg", fmt.Appendf(nil, "message %d", i))
			return err == nil
		}, "publish message %d: %v", i, err)
	}
}

// assertMessages checks that the stream holds want messages, the last being
// "message <want-1>"; it retries while the client reconnects after a restart.
func assertMessages(t *testing.T, stream jetstream.Stream, want int) {
	t.Helper()
	var msgs uint64
	var last string
	var err error
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		var info *jetstream.StreamInfo
		if info, err = stream.Info(ctx); err != nil {
			return false
		}
		msgs = info.State.Msgs
		var msg *jetstream.RawStreamMsg
		if msg, err = stream.GetLastMsgForSubject(ctx, "testenv.msg"); err != nil {
			return false
		}
		last = string(msg.Data)
		return true
	}, "stream info: %v", err)
	if msgs != uint64(want) || last != fmt.Sprintf("message %d", want-1) {
		t.Errorf("stream holds %d messages, the last %q; want %d, the last %q",
			msgs, last, want, fmt.Sprintf("message %d", want-1))
	}
}

func TestNATSClusterLeaderKillAndRejoin(t *testing.T) {
	t.Parallel()
	c := testenv.StartNATSCluster(t, 3)
	js := c.JetStream(t)
	// A cluster just formed may lose its meta leader for a moment (seen
	// under load): the stream is created as the service provisions, trying
	// again through the errors of an election.
	if err := broker.Retrying(t.Context(), slog.New(slog.DiscardHandler), func() error {
		_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
			Name: "TESTENV", Subjects: []string{"testenv.>"}, Storage: jetstream.FileStorage, Replicas: 3,
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, 5)
	leader := c.StreamLeader(t, js, "TESTENV", 10*time.Second)

	leader.Kill(t)
	// The other two elect a new leader and take messages meanwhile.
	publish(t, js, 5, 10)
	if now := c.StreamLeader(t, js, "TESTENV", 10*time.Second); now == leader {
		t.Fatalf("%s still leads after it was killed", leader.Name())
	}
	leader.Restart(t)
	info := c.WaitStreamCurrent(t, js, "TESTENV", 30*time.Second)
	if info.State.Msgs != 10 {
		t.Errorf("%d messages, want 10", info.State.Msgs)
	}
	if !strings.Contains(c.URLs(), leader.URL()) || strings.Count(c.URLs(), ",") != 2 {
		t.Errorf("URLs %q", c.URLs())
	}
	if err := testenv.StreamCurrent(info, 3); err != nil {
		t.Error(err)
	}
}
