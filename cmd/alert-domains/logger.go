package main

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/alert-domains/alert-domains/config"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger builds the one logger of the process: tint text on a terminal
// (with colour unless NO_COLOR is set), JSON lines otherwise, as LOG_FORMAT
// and LOG_LEVEL say.
func newLogger(cfg *config.Config, e *env) *slog.Logger {
	tty := isTerminal(e.stderr)
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if tty {
			format = "text"
		}
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: cfg.Level}))
	}
	return slog.New(tint.NewHandler(e.stderr, &tint.Options{
		Level:      cfg.Level,
		TimeFormat: time.TimeOnly,
		NoColor:    !tty || e.getenv("NO_COLOR") != "",
	}))
}
