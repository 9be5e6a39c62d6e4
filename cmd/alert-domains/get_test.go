package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/alert-domains/alert-domains/connector"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/emulator"
)

// getEnv is the environment of `get` against an emulator.
func getEnv(srv *emulator.Server, extra ...string) config.Lookup {
	vars := map[string]string{
		"DEFENDER_API_URL":       srv.URL,
		"AZURE_AUTHORITY_HOST":   srv.AuthorityHost(),
		"AZURE_TENANT_ID":        srv.TenantID(),
		"AZURE_CLIENT_ID":        srv.ClientID(),
		"AZURE_CLIENT_SECRET":    srv.ClientSecret(),
		"RETRY_INITIAL_INTERVAL": "10ms",
		"RETRY_MAX_INTERVAL":     "50ms",
		"RETRY_MAX_ELAPSED":      "500ms",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	return config.MapEnv(vars)
}

type getRun struct {
	err            error
	stdout, stderr string
	lines          []map[string]any
}

func runGetTest(t *testing.T, srv *emulator.Server, lookup config.Lookup, stdin string, args ...string) getRun {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{lookupEnv: lookup, stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, hc: srv.Client()}
	err := runGet(t.Context(), e, args)
	r := getRun{err: err, stdout: stdout.String(), stderr: stderr.String()}
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		r.lines = append(r.lines, m)
	}
	return r
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

var completedAt = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestGetPrintsOneResultPerID(t *testing.T) {
	for _, api := range []connector.API{connector.Graph, connector.MDE} {
		t.Run(string(api), func(t *testing.T) {
			srv := emulator.NewServer(emulator.Config{SeedData: true})
			t.Cleanup(srv.Close)
			r := runGetTest(t, srv, getEnv(srv, "DEFENDER_API", string(api)), "",
				"da637472900382838869_1364969609", "636688558380765161_2136280442", "bad id!", "da1_2")
			if exitStatus(r.err) != 1 {
				t.Errorf("exit status %d (%v), want 1", exitStatus(r.err), r.err)
			}
			if len(r.lines) != 4 {
				t.Fatalf("%d result lines, want 4:\n%s", len(r.lines), r.stdout)
			}
			for _, m := range r.lines {
				if s, _ := m["completedAt"].(string); !completedAt.MatchString(s) {
					t.Errorf("completedAt %q", s)
				}
				delete(m, "completedAt")
			}
			// Graph knows the endpoint ID without a prefix as da + ID: a
			// second call, and the ID Graph gave it.
			legacy := map[string]any{"status": "success", "alertId": "636688558380765161_2136280442", "domains": []any{}, "attempts": 1.0, "cached": false, "api": "mde"}
			if api == connector.Graph {
				legacy = map[string]any{"status": "success", "alertId": "636688558380765161_2136280442", "domains": []any{}, "attempts": 2.0, "cached": false, "api": "graph",
					"graphAlertId": "da636688558380765161_2136280442"}
			}
			want := []map[string]any{
				{"status": "success", "alertId": "da637472900382838869_1364969609", "domains": []any{"www.example.com", "cdn.example.net"}, "attempts": 1.0, "cached": false, "api": string(api)},
				legacy,
				{"status": "failure", "error": map[string]any{"kind": "invalid_request", "message": "alert id has characters other than A-Z a-z 0-9 _ -"}, "attempts": 0.0, "api": string(api)},
			}
			for i, w := range want {
				if !reflect.DeepEqual(r.lines[i], w) {
					t.Errorf("line %d = %v, want %v", i, r.lines[i], w)
				}
			}
			nf := r.lines[3]
			errObj, _ := nf["error"].(map[string]any)
			code := map[connector.API]string{connector.Graph: "NotFound", connector.MDE: "ResourceNotFound"}[api]
			if nf["status"] != "failure" || nf["alertId"] != "da1_2" || errObj["kind"] != "not_found" || errObj["httpStatus"] != 404.0 ||
				errObj["code"] != code || nf["attempts"] != 1.0 {
				t.Errorf("not found line = %v", nf)
			}
			if _, ok := errObj["requestId"]; ok != (api == connector.Graph) {
				t.Errorf("not found line = %v: a requestId only on graph, which sends one", nf)
			}
			if !strings.Contains(r.stderr, `get "bad id!": invalid_request`) || !strings.Contains(r.stderr, "get da1_2: not_found") {
				t.Errorf("stderr does not explain the failures:\n%s", r.stderr)
			}
			if retire := strings.Contains(r.stderr, "retires on "+connector.MDERetirement); retire != (api == connector.MDE) {
				t.Errorf("stderr names the retirement: %v, want only on mde:\n%s", retire, r.stderr)
			}
		})
	}
}

// TestGetSaysAMissingPermission: before any lookup, get says on stderr
// that the token lacks the API's permission and how to grant it; the
// lookups then fail as forbidden.
func TestGetSaysAMissingPermission(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{SeedData: true,
		Permissions: []string{"SecurityIncident.Read.All", emulator.MDEPermission}})
	t.Cleanup(srv.Close)
	r := runGetTest(t, srv, getEnv(srv), "", "da637472900382838869_1364969609")
	if exitStatus(r.err) != 1 || len(r.lines) != 1 {
		t.Fatalf("exit %d, %d lines: %v\n%s", exitStatus(r.err), len(r.lines), r.err, r.stdout)
	}
	if errObj, _ := r.lines[0]["error"].(map[string]any); errObj["kind"] != "forbidden" || !strings.Contains(errObj["message"].(string), "SecurityAlert.Read.All") {
		t.Errorf("result %v, want forbidden naming SecurityAlert.Read.All", r.lines[0])
	}
	if !strings.Contains(r.stderr, "lacks the application permission SecurityAlert.Read.All") || !strings.Contains(r.stderr, "Grant admin consent") {
		t.Errorf("stderr does not say the missing permission before the lookups:\n%s", r.stderr)
	}
}

// TestGetPrintsNoControlCharacters: an Entra ID error with terminal escapes
// reaches the operator's terminal without them.
func TestGetPrintsNoControlCharacters(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{})
	t.Cleanup(srv.Close)
	bad := emulator.Answer{Status: 400, Body: "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215 \x1b]0;pwned\x07\x1b[2J\u009b31m\"}"}
	srv.ScriptToken(bad, bad, bad, bad, bad, bad)
	r := runGetTest(t, srv, getEnv(srv, "LOG_FORMAT", "text"), "", "da1_2")
	if !strings.Contains(r.stderr, "AADSTS7000215") {
		t.Fatalf("stderr does not say Entra's error:\n%s", r.stderr)
	}
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\u009b") {
		t.Errorf("control characters printed:\n%q\n%q", r.stdout, r.stderr)
	}
}

func TestGetAllSucceeded(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{SeedData: true})
	t.Cleanup(srv.Close)
	r := runGetTest(t, srv, getEnv(srv), "", "da637472900382838869_1364969609")
	if r.err != nil || len(r.lines) != 1 || r.stderr != "alert-domains: get: counting the quota alone (150/1m in this process, not with serve's replicas): NATS_URL is empty\n" {
		t.Fatalf("err %v, stdout %q, stderr %q", r.err, r.stdout, r.stderr)
	}
}

func TestGetStdinKeepsOrder(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{AnyAlert: true})
	t.Cleanup(srv.Close)
	var in strings.Builder
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("alert_%02d", i)
		ids = append(ids, id)
		fmt.Fprintf(&in, "  %s \r\n\n", id)
		if i%5 == 0 {
			// Early IDs answer late, so later ones finish first.
			srv.Script(id, emulator.Answer{Status: 503}, emulator.Answer{Status: 503})
		}
	}
	in.WriteString(strings.Repeat("x", 100_000) + "\n")
	r := runGetTest(t, srv, getEnv(srv), in.String(), "-concurrency", "4", "-")
	if exitStatus(r.err) != 1 {
		t.Errorf("exit status %d (%v), want 1 for the over-long line", exitStatus(r.err), r.err)
	}
	if len(r.lines) != 41 {
		t.Fatalf("%d lines, want 41", len(r.lines))
	}
	for i, id := range ids {
		if r.lines[i]["alertId"] != id || r.lines[i]["status"] != "success" {
			t.Fatalf("line %d = %v, want a success for %s", i, r.lines[i], id)
		}
	}
	if errObj, _ := r.lines[40]["error"].(map[string]any); errObj["kind"] != "invalid_request" {
		t.Errorf("over-long line: %v", r.lines[40])
	}
	if len(r.stderr) > 1000 {
		t.Errorf("stderr repeats the over-long line: %d bytes", len(r.stderr))
	}
}

func TestGetUsageAndConfigurationErrors(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{SeedData: true})
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		getenv config.Lookup
		args   []string
	}{
		{"no ids", getEnv(srv), nil},
		{"dash with ids", getEnv(srv), []string{"-", "a_1"}},
		{"bad flag", getEnv(srv), []string{"-nope", "a_1"}},
		{"zero concurrency", getEnv(srv), []string{"-concurrency", "0", "a_1"}},
		{"http api url", getEnv(srv, "DEFENDER_API_URL", "http://127.0.0.1:1"), []string{"a_1"}},
		{"no credential", getEnv(srv, "AZURE_CLIENT_SECRET", ""), []string{"a_1"}},
		{"two credentials", getEnv(srv, "DEFENDER_MANAGED_IDENTITY", "true"), []string{"a_1"}},
		{"bad rate limits", getEnv(srv, "DEFENDER_RATE_LIMITS", "lots"), []string{"a_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runGetTest(t, srv, tt.getenv, "", tt.args...)
			if exitStatus(r.err) != 2 || r.stdout != "" {
				t.Errorf("exit status %d (%v), stdout %q; want 2 and nothing", exitStatus(r.err), r.err, r.stdout)
			}
			if strings.Contains(fmt.Sprint(r.err), srv.ClientSecret()) {
				t.Errorf("error %v shows the secret", r.err)
			}
		})
	}
	if srv.Calls() != 0 || srv.TokensIssued() != 0 {
		t.Errorf("a usage error reached the emulator")
	}
	var stderr bytes.Buffer
	code := exitCode(&stderr, run(t.Context(), []string{"get"}, getEnv(srv), strings.NewReader(""), io.Discard, &stderr))
	if code != 2 {
		t.Errorf("run(get) = %d, want 2", code)
	}
}

func TestGetStopsWhenCanceled(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{SeedData: true})
	t.Cleanup(srv.Close)
	srv.Script("da637472900382838869_1364969609", emulator.Answer{Delay: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe() // stdin that never ends
	t.Cleanup(func() { _ = pw.Close() })
	go func() { _, _ = io.WriteString(pw, "da637472900382838869_1364969609\n") }()
	var stdout, stderr bytes.Buffer
	e := &env{lookupEnv: getEnv(srv), stdin: pr, stdout: &stdout, stderr: &stderr, hc: srv.Client()}
	done := make(chan error, 1)
	go func() { done <- runGet(ctx, e, []string{"-"}) }()
	deadline := time.After(10 * time.Second)
	for srv.Calls() == 0 {
		select {
		case <-deadline:
			t.Fatal("the lookup never reached the emulator")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if exitStatus(err) != 1 || !errors.Is(err, context.Canceled) {
			t.Errorf("runGet = %v, want exit status 1 with context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("get did not stop after the cancel")
	}
}

// throttledGet runs get of two alerts against an emulator that answers one
// call per 2s (the second gets 429 with Retry-After), with stderr as given.
func throttledGet(t *testing.T, stderr io.Writer, extra ...string) (stdout string, err error) {
	t.Helper()
	srv := emulator.NewServer(emulator.Config{SeedData: true, Quota: []connector.Limit{{Count: 1, Window: 2 * time.Second}}})
	t.Cleanup(srv.Close)
	lookup := getEnv(srv, append([]string{"DEFENDER_RATE_LIMITS", "none", "RETRY_MAX_ELAPSED", "30s", "RETRY_MAX_INTERVAL", "2s"}, extra...)...)
	var out bytes.Buffer
	e := &env{lookupEnv: lookup, stdin: strings.NewReader(""), stdout: &out, stderr: stderr, hc: srv.Client()}
	err = runGet(t.Context(), e, []string{"-concurrency", "1", "da637472900382838869_1364969609", "636688558380765161_2136280442"})
	return out.String(), err
}

// TestGetLogsLongWaits: get that waits for Microsoft's Retry-After says so
// in a log line when stderr is not a terminal.
func TestGetLogsLongWaits(t *testing.T) {
	var stderr bytes.Buffer
	stdout, err := throttledGet(t, &stderr, "LOG_FORMAT", "json")
	if err != nil || strings.Count(stdout, `"status":"success"`) != 2 {
		t.Fatalf("get: %v\n%s%s", err, stdout, stderr.String())
	}
	var logged map[string]any
	for line := range strings.Lines(stderr.String()) {
		if strings.Contains(line, "waiting for Microsoft") && strings.Contains(line, "Retry-After") {
			logged = json2map(t, line)
		}
	}
	if reason, _ := logged["reason"].(string); !strings.Contains(reason, "Retry-After") || logged["done"] != "1 of 2 done" {
		t.Errorf("no log line of the wait for Retry-After:\n%s\n%s", stderr.String(), stdout)
	}
}

// TestGetShowsLongWaitsOnATerminal: on a terminal, get shows what it waits
// for in a progress line, and clears it.
func TestGetShowsLongWaitsOnATerminal(t *testing.T) {
	tty, screen := openTerminal(t)
	stdout, err := throttledGet(t, tty)
	if err != nil || strings.Count(stdout, `"status":"success"`) != 2 {
		t.Fatalf("get: %v\n%s", err, stdout)
	}
	shown := screen.waitFor(t, "the wait and the cleared line", func(s string) bool { return strings.HasSuffix(s, "\r\x1b[K") })
	if !strings.Contains(shown, "get: 1 of 2 done; Microsoft answered 429: next call in") || strings.Contains(shown, `"msg"`) {
		t.Errorf("terminal shows %q, want the wait for Retry-After and no log line", shown)
	}
}
