package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/redact"
)

// env is what every command gets from the process: its environment and its
// standard streams. Commands never read os.* directly, so tests can run them
// in-process.
type env struct {
	lookupEnv config.Lookup
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// getenv returns the value of an environment variable, or "".
func (e *env) getenv(key string) string {
	v, _ := e.lookupEnv(key)
	return v
}

// command is one sub-command of the binary.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// exitError carries a process exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a command-line or configuration mistake: exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// errSomeFailed ends a command with exit status 1 without printing anything
// more: the command has already reported each failure.
var errSomeFailed = &exitError{code: 1}

func commands() []command {
	return []command{
		{"serve", "run the consumer service (the main job)", runServe},
		{"demo", "embedded NATS + Defender emulator + the service on sample alerts, then exit", runDemo},
		{"get", "look up alert IDs once, without NATS (arguments, or - for stdin)", runGet},
		{"publish", "publish alert IDs as requests (arguments, or - for stdin)", runPublish},
		{"emulate", "run the Defender + Entra ID emulator alone", runEmulate},
		{"replay", "republish failed or stored requests", runReplay},
		{"tail", "follow results as they are published", runTail},
		{"status", "streams, consumer, recent failures and quota use on one screen", runStatus},
		{"version", "the version, commit and Go version of this binary", runVersion},
		{"help", "list commands, flags and environment variables", runHelp},
	}
}

// run is the whole program: it picks the command, runs it and turns its error
// into an exit status. It is the only place that decides the exit status.
func run(ctx context.Context, args []string, lookupEnv config.Lookup, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{lookupEnv: lookupEnv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		_ = printUsage(e.stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, rest)
		return exitCode(e, err)
	}
	fmt.Fprintf(stderr, "alert-domains: unknown command %q\n\n", name)
	_ = printUsage(e.stderr)
	return 2
}

func exitCode(e *env, err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(e.stderr, "alert-domains: %s\n", redact.URLs(ee.err.Error()))
		}
		return ee.code
	}
	fmt.Fprintf(e.stderr, "alert-domains: %s\n", redact.URLs(err.Error()))
	return 1
}
