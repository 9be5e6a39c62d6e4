// Command alert-domains turns Microsoft Defender alert IDs published to
// NATS JetStream into the domains each alert involves.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/buildinfo"
	"github.com/alert-domains/alert-domains/internal/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitOnSecondSignal(ctx, stop)
	err := protectProcess()
	if err == nil {
		err = run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// exitCode says err on w, without URL credentials, and returns its exit status.
func exitCode(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code := 1
	if ee, ok := errors.AsType[*exitError](err); ok {
		code, err = ee.code, ee.err
	}
	if err != nil {
		fmt.Fprintf(w, "alert-domains: %s\n", redact.URLs(err.Error()))
	}
	return code
}

// exitOnSecondSignal exits at once, with status 1, on a second signal.
func exitOnSecondSignal(first context.Context, stop context.CancelFunc) {
	<-first.Done()
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	stop()
	fmt.Fprintf(os.Stderr, "alert-domains: second signal (%v) during shutdown, exiting at once\n", <-second)
	os.Exit(1)
}

// env is the process's environment and standard streams, so tests can run commands in-process.
type env struct {
	lookupEnv      config.Lookup
	stdin          io.Reader
	stdout, stderr io.Writer
	hc             *http.Client // for Entra ID and Microsoft; nil: the connector's own (set by demo and tests)
}

func (e *env) getenv(key string) string {
	v, _ := e.lookupEnv(key)
	return v
}

type command struct {
	name, summary, usage string
	run                  func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the consumer service (the main job)", serveUsage, runServe},
		{"demo", "embedded NATS + Defender emulator + the service on sample alerts, then exit", demoUsage, runDemo},
		{"get", "look up alert IDs once, without NATS (arguments, or - for stdin)", getUsage, runGet},
		{"publish", "publish alert IDs as requests (arguments, or - for stdin)", publishUsage, runPublish},
		{"emulate", "run the Defender + Entra ID emulator alone", emulateUsage, runEmulate},
		{"replay", "republish failed or stored requests", replayUsage, runReplay},
		{"tail", "follow results as they are published", tailUsage, runTail},
		{"status", "streams, consumer, recent failures and quota use on one screen", statusUsage, runStatus},
		{"version", "the version, commit and Go version of this binary", "version\n\nPrints the version, commit and Go version the binary was built from.", runVersion},
		{"help", "list commands, flags and environment variables", helpUsage, runHelp},
	}
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run runs the command args names; its error says how the process ends (exitCode).
func run(ctx context.Context, args []string, lookupEnv config.Lookup, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{lookupEnv: lookupEnv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		_ = printUsage(stderr)
		return &exitError{code: 2}
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	}
	c, ok := lookupCommand(name)
	if !ok {
		return usageErrorf("unknown command %q ('alert-domains help' lists them)", name)
	}
	return c.run(ctx, e, args[1:])
}

// exitError carries a process exit status out of a command.
type exitError struct {
	code int
	err  error // nil: the command has said everything already
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

// errSomeFailed is exit status 1 once the command has reported each failure.
var errSomeFailed = &exitError{code: 1}

// configError gives configuration mistakes exit status 2.
func configError(err error) error {
	if errors.Is(err, config.ErrInvalid) || errors.Is(err, connector.ErrCredentialConfig) || errors.Is(err, connector.ErrConfig) {
		return &exitError{code: 2, err: err}
	}
	return err
}

// loadConfig reads the environment; a mistake there is exit status 2.
func loadConfig(e *env) (*config.Config, error) {
	cfg, err := config.Load(e.lookupEnv)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return cfg, nil
}

// flags is the flag set of the command called name; -h shows its usage.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a mistake is reported once, by exitCode
	fs.Usage = func() {
		c, _ := lookupCommand(name)
		fmt.Fprintf(e.stderr, "usage: alert-domains %s\n", c.usage)
		var defaults strings.Builder
		fs.SetOutput(&defaults)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if defaults.Len() > 0 {
			fmt.Fprint(e.stderr, "\nflags:\n", defaults.String())
		}
		fmt.Fprintln(e.stderr, "\nenvironment: see 'alert-domains help'")
	}
	return fs
}

// parse parses args into fs: -h is exit status 0, a bad flag (or, with noArgs, any argument) 2.
func parse(fs *flag.FlagSet, args []string, noArgs bool) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return &exitError{code: 0}
	case err != nil:
		return usageErrorf("%s: %v", fs.Name(), err)
	case noArgs && fs.NArg() > 0:
		return usageErrorf("%s takes no arguments (got %q)", fs.Name(), fs.Arg(0))
	}
	return nil
}

func runVersion(ctx context.Context, e *env, args []string) error {
	if err := parse(e.flags("version"), args, true); err != nil {
		return err
	}
	bi := buildinfo.Read()
	_, err := fmt.Fprintf(e.stdout, "alert-domains %s\ncommit %s\n%s\n", bi.Version, bi.Commit, bi.GoVersion)
	return err
}

// connectClient loads the configuration and connects the client command to NATS_URL, or to
// the embedded server of a serve on this host.
func connectClient(ctx context.Context, e *env, command string) (cfg *config.Config, js jetstream.JetStream, closeConn func(), err error) {
	if cfg, err = loadConfig(e); err != nil {
		return nil, nil, nil, err
	}
	url := cmp.Or(cfg.NATSURL, "nats://"+cfg.EmbeddedListen)
	nc, err := broker.Connect(ctx, cfg, url, "alert-domains "+command, newLogger(cfg, e))
	if err != nil {
		return nil, nil, nil, configError(err)
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return cfg, js, nc.Close, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger builds the one logger of the process, as LOG_FORMAT and LOG_LEVEL say.
func newLogger(cfg *config.Config, e *env) *slog.Logger {
	tty := isTerminal(e.stderr)
	if cfg.LogFormat == "json" || (cfg.LogFormat == "" && !tty) {
		return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: cfg.Level, ReplaceAttr: replaceAttr}))
	}
	return slog.New(tint.NewHandler(e.stderr, &tint.Options{
		Level:       cfg.Level,
		TimeFormat:  time.TimeOnly,
		NoColor:     !tty || e.getenv("NO_COLOR") != "",
		ReplaceAttr: replaceAttr,
	}))
}

// replaceAttr writes durations as "25s" and removes the credentials of any URL in a string or an error.
func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch a.Value.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			s = err.Error()
		}
	}
	if strings.Contains(s, "://") {
		a.Value = slog.StringValue(redact.URLs(s))
	}
	return a
}
