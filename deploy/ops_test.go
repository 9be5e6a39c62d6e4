package deploy_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// serviceModule is the service's module, beside this one.
const serviceModule = ".."

// buildService builds alert-domains from the service's module.
func buildService(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "alert-domains")
	cmd := exec.CommandContext(ctxTimeout(t, 5*time.Minute), "go", "build", "-o", bin, "./cmd/alert-domains")
	cmd.Dir = serviceModule
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/alert-domains: %v\n%s", err, out)
	}
	return bin
}

// seedFile writes kp's seed where NATS_NKEY_FILE can name it.
func seedFile(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// process is a running command whose output is read line by line.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	out   strings.Builder
	done  chan struct{}
}

// start runs bin with args and env (besides PATH and HOME); it is stopped
// with SIGTERM at cleanup.
func start(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	pr, pw := io.Pipe()
	p := &process{cmd: exec.Command(bin, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() {
		_ = p.cmd.Wait() // the exit status of a stopped process is not the test's
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // it may have exited
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine waits for a line of output that contains s.
func (p *process) waitLine(t *testing.T, s string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited without a line with %q:\n%s", p.cmd.Path, s, p.output())
			}
			if strings.Contains(line, s) {
				return line
			}
		case <-deadline:
			t.Fatalf("no line with %q within %v:\n%s", s, d, p.output())
		}
	}
}

// run runs bin with args and env to its end.
func run(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctxTimeout(t, time.Minute), bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOperatorCommandsUnderTheOperatorUser runs the service under its own
// user of the single-account example, and `status`, `tail` and `replay`
// under the operator's: each works, and none is refused a subject. A SIEM
// connector's request goes through, and its replay is answered again.
func TestOperatorCommandsUnderTheOperatorUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service")
	}
	bin := buildService(t)
	ex := startNATSExample(t, socPermissions, "ALERT_DOMAINS", "SIEM", "OPERATOR", "PLAYBOOK")
	common := []string{
		"NATS_URL=" + ex.url, "LOG_FORMAT=json", "STREAM_REPLICAS=1", "QUOTA_SCOPE=shared", "CACHE_TTL=1h",
		"AZURE_TENANT_ID=6f1c2b9e-0000-4000-8000-000000000001", "AZURE_CLIENT_ID=0a3e5f7d-0000-4000-8000-000000000002",
	}
	serviceEnv := append(append([]string{}, common...), "HTTP_LISTEN=",
		"AZURE_CLIENT_SECRET=not-used", "NATS_NKEY_FILE="+seedFile(t, ex.users["ALERT_DOMAINS"]))
	operatorEnv := append(append([]string{}, common...), "NATS_NKEY_FILE="+seedFile(t, ex.users["OPERATOR"]))

	serve := start(t, bin, serviceEnv, "serve")
	serve.waitLine(t, `"msg":"ready"`, time.Minute)

	// A request that never reaches Defender: answered at once with a failure.
	siem := ex.connect(t, "SIEM", "")
	ack, err := siem.js.Publish(ctxTimeout(t, 10*time.Second), requestSubject, []byte("not an alert id!"))
	if err != nil {
		t.Fatalf("the SIEM publishes a request: %v", err)
	}
	tail := start(t, bin, operatorEnv, "tail", "--since", "1h", "--json")
	tail.waitLine(t, `"invalid_request"`, time.Minute)

	status, err := run(t, bin, operatorEnv, "status")
	if err != nil || !strings.Contains(status, "1 bound") {
		t.Fatalf("status under the operator's user: %v\n%s", err, status)
	}
	replay, err := run(t, bin, operatorEnv, "replay", "--failed", "--kind", "all")
	if err != nil {
		t.Fatalf("replay under the operator's user: %v\n%s", err, replay)
	}
	// The replayed request is answered again: a second result.
	svc := ex.connect(t, "ALERT_DOMAINS", "")
	results, err := svc.js.Stream(ctxTimeout(t, 10*time.Second), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := results.OrderedConsumer(ctxTimeout(t, 10*time.Second), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.Next(jetstream.FetchMaxWait(time.Minute)); err != nil {
			t.Fatalf("result %d of request %d and its replay: %v", i+1, ack.Sequence, err)
		}
	}
	for name, out := range map[string]string{"serve": serve.output(), "tail": tail.output(), "status": status, "replay": replay} {
		if strings.Contains(strings.ToLower(out), "permissions violation") {
			t.Errorf("%s was refused a subject:\n%s", name, out)
		}
	}
}
