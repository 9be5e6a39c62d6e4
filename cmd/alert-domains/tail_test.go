package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// startTail runs tail until the test cancels it; it returns its stdout,
// its stderr and a function that stops it and returns its exit status.
func startTail(t *testing.T, o *opsEnv, args ...string) (stdout, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr = newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- exitCode(stderr, run(ctx, append([]string{"tail"}, args...), config.MapEnv(o.vars), strings.NewReader(""), stdout, stderr))
	}()
	stderr.waitFor(t, "start of tail", func(s string) bool { return strings.Contains(s, "following results") })
	stopped := false
	stop = func() int {
		cancel()
		stopped = true
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("tail did not stop on cancel")
			return -1
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return stdout, stderr, stop
}

func TestTailJSONPrintsResultsPublishedAfterStart(t *testing.T) {
	o := newOpsEnv(t, true)
	old := o.request(t, "old", nil)
	o.failure(t, "old", message.KindNotFound, old, 0)

	out, _, stop := startTail(t, o, "--json")
	s1 := o.request(t, "da637472900382838869_1364969609", nil)
	s2 := o.request(t, "bad", nil)
	o.result(t, message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now()), s1)
	o.failure(t, "bad", message.KindUnavailable, s2, 0)
	text := out.waitFor(t, "two results", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	if code := stop(); code != 0 {
		t.Fatalf("tail exit %d on Ctrl-C, want 0", code)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), text)
	}
	first, second := json2map(t, lines[0]), json2map(t, lines[1])
	if first["status"] != "success" || first["requestSequence"] != float64(s1) {
		t.Errorf("first line %s", lines[0])
	}
	if second["status"] != "failure" || second["alertId"] != "bad" {
		t.Errorf("second line %s", lines[1])
	}
}

func TestTailReadableFailedSince(t *testing.T) {
	o := newOpsEnv(t, true)
	s1 := o.request(t, "one", nil)
	o.result(t, message.Success("one", nil, 0, true, time.Now()), s1)
	s2 := o.request(t, "two", nil)
	o.failure(t, "two", message.KindThrottled, s2, 0)

	out, _, stop := startTail(t, o, "--since", "1h", "--failed")
	text := out.waitFor(t, "the failure", func(s string) bool { return strings.Contains(s, "\n") })
	s3 := o.request(t, "three", nil)
	o.failure(t, "three", message.KindForbidden, s3, 0)
	text = out.waitFor(t, "the new failure", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(text, "success") || !strings.Contains(text, "throttled: throttled") || !strings.Contains(text, "forbidden") {
		t.Errorf("output:\n%s", text)
	}
	if !regexp.MustCompile(`failure +- +two `).MatchString(text) {
		t.Errorf("no readable line for alert two:\n%s", text)
	}
}

func TestTailUsage(t *testing.T) {
	o := &opsEnv{vars: map[string]string{}}
	for _, args := range [][]string{{"--failed", "--succeeded"}, {"--since", "soon"}, {"x"}} {
		if code, _, stderr := o.run(t.Context(), append([]string{"tail"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}

func TestResultLine(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 14, 3, 512e6, time.UTC)
	ok := message.Success("da637472900382838869_1364969609", []string{"www.example.com", "cdn.example.net"}, 1, true, now)
	ok.RequestSequence = 1042
	fail := message.Failure("", &connector.Error{Kind: message.KindNotFound, Message: "alert not found", HTTPStatus: 404}, 1, now)
	fail.RequestSequence, fail.ReplayOf = 1043, 7
	hostile := message.Failure("x", &message.Error{Kind: message.Kind("\x1b[2J" + strings.Repeat("k", 3000)), Message: "\x1b]0;owned\x07 msg"}, 0, now)
	tests := []struct {
		r      *message.Result
		tenant string
		want   []string
	}{
		{ok, "contoso", []string{"2026-11-27T09:14:03.512Z", "success", "contoso", "da637472900382838869_1364969609", "www.example.com, cdn.example.net [cached]", "seq 1042"}},
		{fail, "", []string{"failure", "  -  ", "not_found: alert not found (HTTP 404)", "seq 1043, replay of 7"}},
		{message.Success("x", nil, 1, false, now), "", []string{"(no domains)"}},
		{&message.Result{Status: message.StatusSuccess, AlertID: "y", Tenant: "default"}, "", []string{"success  default"}},
	}
	for _, tt := range tests {
		line := resultLine(tt.r, tt.tenant)
		for _, w := range tt.want {
			if !strings.Contains(line, w) {
				t.Errorf("line %q lacks %q", line, w)
			}
		}
	}
	// Text off the wire reaches the terminal without control characters
	// (an escape that clears the screen, a title change) and bounded.
	line := resultLine(hostile, "evil\x1b[2J")
	if strings.ContainsAny(line, "\x1b\x07") || len(line) > 4096 {
		t.Errorf("a hostile result printed %d bytes with control characters: %.200q", len(line), line)
	}
}

// TestTailFollowsTenantSubjects: tail shows the results published to the
// per-tenant subjects as well as the plain ones.
func TestTailFollowsTenantSubjects(t *testing.T) {
	o := newOpsEnv(t, true)
	out, _, stop := startTail(t, o, "--json")
	s1 := o.requestOn(t, "contoso", "a1")
	s2 := o.requestOn(t, "fabrikam", "a2")
	ok := message.Success("a1", []string{"c2.contoso.example"}, 1, false, time.Now())
	ok.Tenant = "contoso"
	o.result(t, ok, s1)
	bad := message.Failure("a2", &connector.Error{Kind: message.KindNotFound, Message: "not found"}, 1, time.Now())
	bad.Tenant = "fabrikam"
	o.result(t, bad, s2)
	text := out.waitFor(t, "two results", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	if code := stop(); code != 0 {
		t.Fatalf("tail exit %d on Ctrl-C, want 0", code)
	}
	if !strings.Contains(text, `"tenant":"contoso"`) || !strings.Contains(text, `"tenant":"fabrikam"`) {
		t.Errorf("tail output lacks a tenant's result:\n%s", text)
	}
}

// TestTailStdoutCarriesOnlyResults: stdout has one line per result, each
// with its tenant, and nothing else, even when tail has more to say.
func TestTailStdoutCarriesOnlyResults(t *testing.T) {
	o := newOpsEnv(t, true)
	out, errOut, stop := startTail(t, o)
	if _, err := o.js.Publish(t.Context(), o.cfg.SuccessSubject, []byte(`{"status":"success","alertId":"forged"}`)); err != nil {
		t.Fatal(err)
	}
	s1 := o.requestOn(t, "contoso", "a1")
	ok := message.Success("a1", []string{"c2.contoso.example"}, 1, false, time.Now())
	ok.Tenant = "contoso"
	o.result(t, ok, s1)
	s2 := o.request(t, "a2", nil)
	o.failure(t, "a2", message.KindNotFound, s2, 0)
	text := out.waitFor(t, "two results", func(s string) bool { return strings.Count(s, "\n") >= 2 })
	if code := stop(); code != 0 {
		t.Fatalf("tail exit %d on Ctrl-C, want 0", code)
	}
	line := regexp.MustCompile(`^\S+Z +(success|failure) +(\S+) +(\S+) +.*\[seq \d+\]$`)
	var tenants []string
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("stdout has a line that is not a result: %q", l)
			continue
		}
		tenants = append(tenants, m[2])
	}
	if !slices.Equal(tenants, []string{"contoso", "-"}) {
		t.Errorf("tenant column %q, want contoso then -:\n%s", tenants, text)
	}
	if e := errOut.String(); !strings.Contains(e, "following results") || !strings.Contains(e, "not written by the service") {
		t.Errorf("stderr lacks what tail follows or the message it ignored:\n%s", e)
	}
}
