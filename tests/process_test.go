package tests

// End-to-end tests of the process as users run it: configuration
// mistakes, secrets in URLs and in the environment, the start-up line,
// metrics exported from 0, version, help and status, and a connection NATS
// closes for good.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// authServer starts an in-process nats-server with JetStream that accepts
// only user with password.
func authServer(t *testing.T, user, password string) (*server.Server, *server.Options) {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		Users:     []*server.User{{Username: user, Password: password}},
	}
	return testenv.StartEmbedded(t, opts), opts
}

// withUser is the client URL of s with user and password in it.
func withUser(s *server.Server, user, password string) string {
	u, _ := url.Parse(s.ClientURL())
	u.User = url.UserPassword(user, password)
	return u.String()
}

// TestConfigurationErrorsExitTwoWithoutCredentials: HTTP_LISTEN that is no
// address is a configuration error (exit 2, before anything starts), and a
// URL with a password in it never shows the password in the message.
func TestConfigurationErrorsExitTwoWithoutCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		name string
	}{
		{[]string{"HTTP_LISTEN=garbage"}, "HTTP_LISTEN"},
		{[]string{"HTTP_LISTEN=127.0.0.1:99999"}, "HTTP_LISTEN"},
		{[]string{"DEFENDER_API_URL=http://user:hunter2@api.example.com"}, "DEFENDER_API_URL"},
		{[]string{"AZURE_AUTHORITY_HOST=ftp://user:hunter2@login.example.com"}, "AZURE_AUTHORITY_HOST"},
	} {
		code, out := opsCommand(t, append(tc.env, "NATS_URL=nats://127.0.0.1:1"), "serve")
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", tc.env, code, out)
		}
		if !strings.Contains(out, tc.name) {
			t.Errorf("%v: the error does not name %s:\n%s", tc.env, tc.name, out)
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("%v: the password shows:\n%s", tc.env, out)
		}
	}
}

// TestHelpVersion: `help -h` is help, and `version` names the version, the
// commit and the Go version.
func TestHelpVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help", "-h"}, {"help", "--help"}} {
		code, out := opsCommand(t, nil, args...)
		if code != 0 || !strings.Contains(out, "commands:") || !strings.Contains(out, "version") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	code, out := opsCommand(t, nil, "version")
	if code != 0 || !strings.Contains(out, "alert-domains ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
}

// TestStatusOnEmptyServer: status against a server without the service's
// streams names what is missing and exits non-zero.
func TestStatusOnEmptyServer(t *testing.T) {
	t.Parallel()
	_, natsURL := testenv.EmbeddedJetStream(t)
	code, out := opsCommand(t, []string{"NATS_URL=" + natsURL, "LOG_FORMAT=json"}, "status")
	if code == 0 {
		t.Errorf("status on an empty server: exit 0\n%s", out)
	}
	for _, want := range []string{"missing", requestStream, resultStream, "consumer " + consumerName, "PROVISION=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "nats: bucket not found") {
		t.Errorf("status prints the raw client error:\n%s", out)
	}
}

// TestStartupLineMetricsFromZero: the service logs the NATS server it is
// connected to (URL without password, name, version) and its own version;
// JSON logs write durations as Go durations; a second start against the
// topology the first created reports no drift; /metrics exports the build
// information and every known counter from 0.
func TestStartupLineMetricsFromZero(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	srv, _ := authServer(t, "alice", "s3cret-pw")
	listen, base := httpEndpoint(t)
	env := serviceEnv(emu, cert, withUser(srv, "alice", "s3cret-pw"), "HTTP_LISTEN="+listen)

	first := testenv.StartServe(t, env)
	first.Stop(t)
	svc := testenv.StartServe(t, env)

	line := svc.WaitForLine(t, `"msg":"connected to NATS"`, 5*time.Second)
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("start-up line %q: %v", line, err)
	}
	if entry["server"] != srv.ClientURL() || entry["server_name"] != srv.Name() || entry["server_version"] != server.VERSION {
		t.Errorf("start-up line %s, want server %s, name %s, version %s", line, srv.ClientURL(), srv.Name(), server.VERSION)
	}
	for _, k := range []string{"version", "commit", "goversion"} {
		if s, _ := entry[k].(string); s == "" {
			t.Errorf("start-up line lacks %s: %s", k, line)
		}
	}
	ready := svc.WaitForLine(t, `"msg":"ready"`, 5*time.Second)
	var r struct{ Startup any }
	if err := json.Unmarshal([]byte(ready), &r); err != nil {
		t.Fatal(err)
	}
	if s, ok := r.Startup.(string); !ok || !strings.HasSuffix(s, "s") {
		t.Errorf("ready line writes the start-up duration as %v, want a Go duration: %s", r.Startup, ready)
	}
	if out := svc.Output(); strings.Contains(out, "drifted") || strings.Contains(out, "s3cret-pw") {
		t.Errorf("second start reports drift or shows the password:\n%s", out)
	}

	series := scrapeMetrics(t, base)
	for _, want := range []string{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="default"}`,
		`alert_domains_results_total{api="graph",kind="not_found",status="failure",tenant="default"}`,
		`alert_domains_results_total{api="graph",kind="unavailable",status="failure",tenant="default"}`,
		`alert_domains_deliveries_total{action="ack"}`,
		`alert_domains_deliveries_total{action="hand_back"}`,
		`alert_domains_defender_calls_total{api="graph",code="429",tenant="default"}`,
		`alert_domains_results_ignored_total{reason="message_id"}`,
		`alert_domains_delivery_limit_advisories_total{result="stored"}`,
	} {
		v, ok := series[want]
		if !ok || v != 0 {
			t.Errorf("%s = %v (exported %v), want 0 from the start", want, v, ok)
		}
	}
	found := false
	for s, v := range series {
		if strings.HasPrefix(s, "alert_domains_build_info{") && v == 1 && strings.Contains(s, `goversion="go1.`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no alert_domains_build_info series")
	}
	svc.Stop(t)
}

// TestHookEnvironmentWithoutURLPassword: a hook given NATS_URL by HOOK_ENV
// sees it without the password it carries, so the password never reaches
// the hook nor, by its output, the log; the service's other variables
// (its Microsoft credentials among them) never reach a hook.
func TestHookEnvironmentWithoutURLPassword(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	srv, _ := authServer(t, "alice", "s3cret-pw")
	natsURL := withUser(srv, "alice", "s3cret-pw")
	env := serviceEnv(emu, cert, natsURL, "ON_SUCCESS_EXEC=env", "HOOK_ENV=NATS_URL", "LOG_LEVEL=debug")
	svc := testenv.StartServe(t, env)
	_, js := testenv.Connect(t, natsURL)
	publish(t, js, knownAlert, nil)
	waitResults(t, js, 1, 30*time.Second)
	svc.WaitForLine(t, `"msg":"hook ran"`, 10*time.Second)
	svc.Stop(t)
	out := svc.Output()
	if !strings.Contains(out, "NATS_URL="+srv.ClientURL()) {
		t.Errorf("the hook did not see NATS_URL without its password:\n%s", out)
	}
	if strings.Contains(out, "s3cret-pw") {
		t.Errorf("the password reached the log:\n%s", out)
	}
	if strings.Contains(out, "AZURE_TENANT_ID=") || strings.Contains(out, "DEFENDER_API_URL=") {
		t.Errorf("a variable HOOK_ENV does not name reached the hook:\n%s", out)
	}
}

// TestEnvironmentUnreadableByOtherProcesses: the process's own environment
// (with its secrets) cannot be read through /proc by another process of the
// same user, such as a hook.
func TestEnvironmentUnreadableByOtherProcesses(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildBinary(t)
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		// Root reads any process's environment: run both sides as nobody.
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		dir, err := os.MkdirTemp("", "alert-domains-undumpable")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Copied by another process: a file this process had open for
		// writing could not be executed while a child forked by a parallel
		// test still held the descriptor ("text file busy").
		copied := filepath.Join(dir, "alert-domains")
		if out, err := exec.Command("cp", bin, copied).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		if err := os.Chmod(copied, 0o755); err != nil {
			t.Fatal(err)
		}
		bin = copied
	}
	cmd := exec.Command(bin, "emulate", "-listen", "127.0.0.1:0")
	cmd.Env = []string{"AZURE_CLIENT_SECRET=top-secret-value", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Wait until it runs (its first line), so prctl has been called.
	buf := make([]byte, 1)
	if _, err := io.ReadFull(stdout, buf); err != nil {
		t.Fatalf("emulate printed nothing: %v", err)
	}
	reader := exec.Command("cat", fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	reader.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := reader.CombinedOutput()
	if err == nil || strings.Contains(string(out), "top-secret-value") {
		t.Errorf("another process of the same user read the environment (%v): %q", err, out)
	}
}

// TestClosedConnectionExits: when the server stops accepting the service's
// credentials (the password was changed and the server reloaded), nats.go
// closes the connection for good; serve exits non-zero within seconds,
// naming the reason, instead of staying up doing nothing.
func TestClosedConnectionExits(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	srv, opts := authServer(t, "alice", "first-pw")
	listen, base := httpEndpoint(t)
	svc := testenv.StartServe(t, serviceEnv(emu, cert, withUser(srv, "alice", "first-pw"), "HTTP_LISTEN="+listen))

	changed := *opts
	changed.Users = []*server.User{{Username: "alice", Password: "second-pw"}}
	if err := srv.ReloadOptions(&changed); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, err := svc.Wait(20 * time.Second)
	if err != nil {
		code, _, lerr := httpGet(base + "/livez")
		t.Fatalf("serve still runs after the server refused its credentials (/livez %d %v): %v\n%s", code, lerr, err, svc.Output())
	}
	t.Logf("exited %d after %v", code, time.Since(start).Round(time.Millisecond))
	if code == 0 {
		t.Errorf("exit status 0, want non-zero\n%s", svc.Output())
	}
	out := svc.Output()
	if !strings.Contains(out, "alert-domains: the NATS connection was closed") || !strings.Contains(strings.ToLower(out), "authorization violation") {
		t.Errorf("the exit message does not name the reason:\n%s", out)
	}
	if strings.Contains(out, "first-pw") || strings.Contains(out, "second-pw") {
		t.Errorf("a password shows:\n%s", out)
	}
}
