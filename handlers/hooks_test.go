package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

func TestHooksRunWithResultOnStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hook.json")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := NewHooks("tee "+out, "false", 5*time.Second, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	h.Run(t.Context(), message.Success("abc", []string{"a.example"}, 1, false, testNow))
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("success hook did not run: %v", err)
	}
	var got message.Result
	if err := json.Unmarshal(data, &got); err != nil || got.AlertID != "abc" || got.Status != message.StatusSuccess {
		t.Errorf("hook got %s (%v)", data, err)
	}

	// A failing hook is logged; nothing else happens.
	logs.Reset()
	h.Run(t.Context(), message.Failure("abc", context.DeadlineExceeded, 1, testNow))
	if !strings.Contains(logs.String(), `"msg":"hook failed"`) || !strings.Contains(logs.String(), `"hook":"false"`) {
		t.Errorf("failing hook not logged: %s", logs.String())
	}
}

func TestHookTimeLimit(t *testing.T) {
	var logs bytes.Buffer
	h, err := NewHooks("sleep 30", "", 200*time.Millisecond, nil, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.Run(t.Context(), message.Success("abc", nil, 1, false, testNow))
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("hook held the message for %v", d)
	}
	if !strings.Contains(logs.String(), "killed after 200ms") {
		t.Errorf("time-out not logged: %s", logs.String())
	}
}

func TestHooksMiddlewareRunsForEveryStoredResult(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hook.log")
	h, err := NewHooks("tee -a "+out, "tee -a "+out, 5*time.Second, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	outcomes := []consumer.Outcome{
		{Action: consumer.Ack, Stored: true, Result: message.Success("new", nil, 1, false, testNow)},
		// Stored by an earlier delivery, which may have crashed before its hook.
		{Action: consumer.Ack, Stored: true, Duplicate: true, Result: message.Success("dup", nil, 1, false, testNow)},
		{Action: consumer.Retry, Result: message.Success("unstored", nil, 1, false, testNow)},
		{Action: consumer.Retry, Stored: true, Duplicate: true}, // stored result not readable
		{Action: consumer.Ack, Stored: true, Duplicate: true},   // stored, since removed by the stream's limits
	}
	for _, o := range outcomes {
		handler := h.Middleware()(func(context.Context, *consumer.Delivery) consumer.Outcome { return o })
		if got := handler(t.Context(), &consumer.Delivery{}); got.Action != o.Action {
			t.Errorf("middleware changed the action %v to %v", o.Action, got.Action)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"status"`); n != 2 || !strings.Contains(string(data), `"new"`) || !strings.Contains(string(data), `"dup"`) {
		t.Errorf("hooks ran for %d results, want the two stored ones: %s", n, data)
	}
}

func TestNewHooksRejectsMissingProgram(t *testing.T) {
	if _, err := NewHooks("/nonexistent/hook", "", time.Second, nil, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a hook program that does not exist was accepted")
	}
}

// TestHookEnvironment: a hook gets PATH, HOME, TZ, LANG, the result's
// TENANT and the variables HOOK_ENV names (without URL credentials), and
// nothing else of the service's environment.
func TestHookEnvironment(t *testing.T) {
	environ := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=/home/svc", "TZ=UTC", "LANG=C.UTF-8",
		"AZURE_CLIENT_SECRET=s3cret", "NATS_PASSWORD=s3cret", "NATS_URL=nats://svc:s3cret@nats:4222",
		"TENANT=the-service's", "SIEM_URL=https://bob:s3cret@siem.example/hook?x=1", "SIEM_LEVEL=high", "UNNAMED=x",
	}
	var logs bytes.Buffer
	h, err := NewHooks("env", "env", 5*time.Second, environ, []string{"SIEM_URL", "SIEM_LEVEL", "NOT_SET"},
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant string
		want   []string
	}{
		{"alpha", []string{"HOME=/home/svc", "LANG=C.UTF-8", "PATH=" + os.Getenv("PATH"), "SIEM_LEVEL=high", "SIEM_URL=https://siem.example/hook?x=1", "TENANT=alpha", "TZ=UTC"}},
		{"", []string{"HOME=/home/svc", "LANG=C.UTF-8", "PATH=" + os.Getenv("PATH"), "SIEM_LEVEL=high", "SIEM_URL=https://siem.example/hook?x=1", "TZ=UTC"}},
	} {
		logs.Reset()
		res := message.Success("abc", nil, 1, false, testNow)
		res.Tenant = tc.tenant
		h.Run(t.Context(), res)
		var line struct{ Output string }
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("log %s: %v", logs.String(), err)
		}
		got := strings.Split(line.Output, "\n")
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("tenant %q: the hook's environment is\n%s\nwant\n%s", tc.tenant, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}
