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

// ErrStillRunning is returned by [Process.Wait] when the process has not
// exited within the time-out.
var ErrStillRunning = errors.New("testenv: process still running")

// processWaitDelay bounds the wait for the output pipes once the process has
// exited, in case a child of it keeps them open.
const processWaitDelay = 5 * time.Second

// Process is a running child process whose standard output and standard
// error are captured line by line.
type Process struct {
	name    string
	cmd     *exec.Cmd
	out     *output
	done    chan struct{}
	waitErr error // set before done is closed
}

// StartService starts bin with args. Its environment is PATH, HOME and
// TMPDIR of the test process followed by env ("KEY=value"; later entries
// win). The process is killed at cleanup if it still runs, and its output is
// logged when the test has failed.
func StartService(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	p, err := startProcess(bin, append(baseEnv(), env...), args, newOutput())
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Kill(); err != nil {
			tb.Errorf("testenv: kill %s: %v", p.name, err)
		}
		if _, err := p.Wait(processWaitDelay + 5*time.Second); err != nil {
			tb.Errorf("testenv: %s: %v", p.name, err)
		}
		if tb.Failed() {
			tb.Logf("%s output:\n%s", p.name, p.Output())
		}
	})
	return p
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

func startProcess(bin string, env, args []string, out *output) (*Process, error) {
	stdout := &lineWriter{out: out}
	stderr := &lineWriter{out: out}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = processWaitDelay
	cmd.SysProcAttr = procAttr()
	p := &Process{name: filepath.Base(bin), cmd: cmd, out: out, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		err := cmd.Wait()
		stdout.flush()
		stderr.flush()
		p.waitErr = err
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done returns a channel closed when the process has exited and its output
// is fully captured.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process. It returns [os.ErrProcessDone] when the
// process has already exited.
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL to the process, unless it has already exited. It does
// not wait for the exit; see [Process.Wait].
func (p *Process) Kill() error {
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Wait waits up to timeout for the process to exit and returns its exit
// code, which is -1 when a signal ended it. The error is [ErrStillRunning]
// (wrapped) on time-out, or reports output that could not be captured.
func (p *Process) Wait(timeout time.Duration) (exitCode int, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		return -1, fmt.Errorf("%w: %s after %v", ErrStillRunning, p.name, timeout)
	}
	var exitErr *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &exitErr) {
		return p.cmd.ProcessState.ExitCode(), p.waitErr
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Output returns the lines of standard output and standard error captured
// so far, in the order they were read.
func (p *Process) Output() string { return p.out.String() }

// WaitForLine waits up to timeout for a line of output that contains substr
// and returns the first such line. It fails the test on time-out, or when
// the process exits without writing one. Call it from the test goroutine.
func (p *Process) WaitForLine(tb testing.TB, substr string, timeout time.Duration) string {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	next := 0
	for {
		lines, changed := p.out.since(next)
		for _, line := range lines {
			if strings.Contains(line, substr) {
				return line
			}
		}
		next += len(lines)
		select {
		case <-changed:
		case <-p.done:
			lines, _ := p.out.since(next)
			for _, line := range lines {
				if strings.Contains(line, substr) {
					return line
				}
			}
			tb.Fatalf("testenv: %s exited (%v) without a line containing %q; output:\n%s",
				p.name, p.cmd.ProcessState, substr, p.Output())
		case <-timer.C:
			tb.Fatalf("testenv: no line containing %q from %s within %v; output:\n%s",
				substr, p.name, timeout, p.Output())
		}
	}
}
