package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/redact"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger builds the one logger of the process, as LOG_FORMAT and LOG_LEVEL say.
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
	switch a.Value.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "://") {
			a.Value = slog.StringValue(redact.URLs(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := err.Error(); strings.Contains(s, "://") {
				a.Value = slog.StringValue(redact.URLs(s))
			}
		}
	}
	return a
}
