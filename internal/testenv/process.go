package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ErrStillRunning is returned by [Process.Wait] on time-out.
var ErrStillRunning = errors.New("testenv: process still running")

// processWaitDelay bounds the wait for pipes a grandchild may keep open.
const processWaitDelay = 5 * time.Second

// Process is a child process whose output is captured line by line.
type Process struct {
	name    string
	cmd     *exec.Cmd
	out     *output
	done    chan struct{}
	waitErr error // set before done is closed
}

// StartService starts bin with args and PATH, HOME and TMPDIR followed by
// env; it is killed at cleanup, its output logged if the test failed.
func StartService(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	p := startProcess(tb, bin, env, args, &output{})
	tb.Cleanup(func() { release(tb, p.name, p, syscall.SIGKILL, processWaitDelay+5*time.Second) })
	return p
}

// release stops p with sig unless it has exited, and logs its output if
// the test failed.
func release(tb testing.TB, label string, p *Process, sig os.Signal, timeout time.Duration) {
	if p != nil && !p.exited() {
		if err := p.stop(sig, timeout); err != nil {
			tb.Errorf("testenv: %s: %v", label, err)
		}
	}
	if tb.Failed() && p != nil {
		tb.Logf("%s output:\n%s", label, p.Output())
	}
}

func baseEnv() []string {
	env := make([]string, 0, 3)
	for _, key := range []string{"PATH", "HOME"} {
		if value, ok := os.LookupEnv(key); ok {
			env = append(env, key+"="+value)
		}
	}
	return append(env, "TMPDIR="+os.TempDir())
}

// startProcess starts bin as StartService does, without waiting for it or releasing it.
func startProcess(tb testing.TB, bin string, env, args []string, out *output) *Process {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = append(baseEnv(), env...), out, out
	cmd.WaitDelay, cmd.SysProcAttr = processWaitDelay, procAttr()
	p := &Process{name: filepath.Base(bin), cmd: cmd, out: out, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("testenv: start %s: %v", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		out.flush()
		close(p.done)
	}()
	return p
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and its output is captured.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig; [os.ErrProcessDone] when the process has exited.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL unless the process has exited, without waiting.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Wait waits up to timeout for the exit code (-1 after a signal); the error
// wraps [ErrStillRunning] on time-out.
func (p *Process) Wait(timeout time.Duration) (exitCode int, err error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("%w: %s after %v", ErrStillRunning, p.name, timeout)
	}
	if _, exited := errors.AsType[*exec.ExitError](p.waitErr); p.waitErr != nil && !exited {
		return p.cmd.ProcessState.ExitCode(), p.waitErr
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Output returns the lines captured so far, in order.
func (p *Process) Output() string { return p.out.String() }

// WaitForLine waits up to timeout for the first line containing substr,
// and fails the test if the process exits first.
func (p *Process) WaitForLine(tb testing.TB, substr string, timeout time.Duration) string {
	tb.Helper()
	next, found, ok := 0, "", false
	Eventually(tb, timeout, 10*time.Millisecond, func() bool {
		exited := p.exited() // first: an exited process has every line in
		for _, line := range p.out.since(next) {
			if next++; strings.Contains(line, substr) {
				found, ok = line, true
				return true
			}
		}
		return exited
	}, "a line containing %q from %s; output:\n%s", substr, p.name, p.out)
	if !ok {
		tb.Fatalf("testenv: %s exited (%v) without a line containing %q; output:\n%s",
			p.name, p.cmd.ProcessState, substr, p.Output())
	}
	return found
}

// stop sends sig and waits up to timeout for the exit, killing the process
// if it lingers.
func (p *Process) stop(sig os.Signal, timeout time.Duration) error {
	if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	if _, err := p.Wait(timeout); !errors.Is(err, ErrStillRunning) {
		return err
	}
	if err := p.Kill(); err != nil {
		return err
	}
	if _, err := p.Wait(timeout); err != nil {
		return err
	}
	return fmt.Errorf("killed after no exit within %v of %v", timeout, sig)
}
