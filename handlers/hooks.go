package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/redact"
	"github.com/alert-domains/alert-domains/message"
)

// hookOutputLimit bounds what a hook's output contributes to the log.
const hookOutputLimit = 4 << 10

// Hooks runs a program, at least once, after each stored result, with the
// result JSON on its standard input; its failure is only logged. Its
// environment holds no credential of the service.
type Hooks struct {
	onSuccess, onFailure []string
	env                  []string
	timeout              time.Duration
	logger               *slog.Logger
}

// hookBase are the variables every hook gets from the service's environment.
var hookBase = []string{"PATH", "HOME", "TZ", "LANG"}

// NewHooks parses the ON_SUCCESS_EXEC and ON_FAILURE_EXEC commands, run
// without a shell, either may be empty. Their environment is environ's base
// variables and names (HOOK_ENV), URL credentials removed.
func NewHooks(onSuccess, onFailure string, timeout time.Duration, environ []string, names []string, logger *slog.Logger) (*Hooks, error) {
	if timeout <= 0 {
		return nil, errors.New("handlers: hook timeout must be positive")
	}
	keep := append(slices.Clone(hookBase), names...)
	env := redact.Environ(slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return !slices.Contains(keep, name)
	}))
	h := &Hooks{onSuccess: strings.Fields(onSuccess), onFailure: strings.Fields(onFailure), env: env, timeout: timeout, logger: logger}
	for _, argv := range [][]string{h.onSuccess, h.onFailure} {
		if len(argv) == 0 {
			continue
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return nil, fmt.Errorf("handlers: hook program %q: %w", argv[0], err)
		}
	}
	return h, nil
}

// Middleware runs the hook of each stored result before the request is
// acknowledged, also of one an earlier delivery stored: it may have crashed first.
func (h *Hooks) Middleware() consumer.Middleware {
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
			out := next(ctx, d)
			if out.Stored && out.Result != nil && out.Action != consumer.Retry {
				h.Run(ctx, out.Result)
			}
			return out
		}
	}
}

// Run runs the hook for res, within the time limit, and logs how it went.
func (h *Hooks) Run(ctx context.Context, res *message.Result) {
	argv := h.onFailure
	if res.Status == message.StatusSuccess {
		argv = h.onSuccess
	}
	if len(argv) == 0 {
		return
	}
	data, err := json.Marshal(res)
	if err != nil {
		h.logger.LogAttrs(ctx, slog.LevelError, "hook not run", slog.String("alert_id", res.AlertID), slog.Any("error", err))
		return
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, argv[0], argv[1:]...)
	cmd.Env = h.env
	if res.Tenant != "" {
		cmd.Env = append(slices.Clip(cmd.Env), "TENANT="+res.Tenant)
	}
	cmd.Stdin = bytes.NewReader(data)
	out := &limitedBuffer{limit: hookOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	start := time.Now()
	err = cmd.Run()
	attrs := []slog.Attr{
		slog.String("hook", argv[0]),
		slog.String("alert_id", res.AlertID),
		slog.String("status", res.Status),
		slog.Duration("duration", time.Since(start)),
		slog.String("output", out.String()),
	}
	if err != nil {
		if hctx.Err() != nil {
			err = fmt.Errorf("killed after %s: %w", h.timeout, err)
		}
		h.logger.LogAttrs(ctx, slog.LevelWarn, "hook failed", append(attrs, slog.Any("error", err))...)
		return
	}
	h.logger.LogAttrs(ctx, slog.LevelDebug, "hook ran", attrs...)
}

// limitedBuffer keeps the first limit bytes written to it; exec writes
// stdout and stderr, the same writer, from one goroutine.
type limitedBuffer struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := max(b.limit-b.buf.Len(), 0)
	b.truncated = b.truncated || room < len(p)
	b.buf.Write(p[:min(room, len(p))])
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	s := strings.TrimSpace(b.buf.String())
	if b.truncated {
		s += " …(truncated)"
	}
	return s
}
