package tests

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestGetUntrustedCertificate: `get` against an Entra ID and
// Defender whose certificate is not trusted ends in seconds, naming the
// certificate problem, though RETRY_MAX_ELAPSED is ten minutes.
func TestGetUntrustedCertificate(t *testing.T) {
	t.Parallel()
	emu, _ := testenv.StartEmulator(t, emulator.WithSeedData())
	// Trust another certificate than the emulator's.
	_, otherPEM, err := emulator.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(other, otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	env := testenv.ServiceEnv(emu, other, "nats://127.0.0.1:1", "RETRY_MAX_ELAPSED=10m", "RETRY_INITIAL_INTERVAL=1s")
	bin := testenv.BuildBinary(t)
	start := time.Now()
	p := testenv.StartService(t, bin, env, "get", "da637472900382838869_1364969609")
	code, err := p.Wait(2 * time.Minute)
	took := time.Since(start)
	out := p.Output()
	if err != nil || code != 1 {
		t.Fatalf("get: exit %d (%v), want 1\n%s", code, err, out)
	}
	t.Logf("get ended in %s:\n%s", took, out)
	if took > 20*time.Second {
		t.Errorf("get took %s, want seconds", took)
	}
	for _, want := range []string{`"kind":"unavailable"`, "entra id unreachable: tls certificate signed by an unknown authority"} {
		if !strings.Contains(out, want) {
			t.Errorf("get output lacks %q:\n%s", want, out)
		}
	}
}

// TestHostileTokenEndpointNeverLeaks: a token endpoint that
// echoes the form with the client secret in its error answers, or sends a
// malformed token answer with an access token in it: neither the secret
// nor that token reaches a log line (at debug), a result or `get`'s output.
func TestHostileTokenEndpointNeverLeaks(t *testing.T) {
	t.Parallel()
	const (
		secret      = "Hostile+S3cret/CLIENT=SECRET&4e1b"
		accessToken = "AT-hostile-access-token-5c2d9e17"
	)
	emu, certFile := testenv.StartEmulator(t, emulator.WithSeedData(),
		emulator.WithTenant(emulator.DefaultTenantID, emulator.DefaultClientID, secret))
	echo := emulator.Answer{Status: 401, EchoForm: true,
		Body: `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Request: `}
	malformed := emulator.Answer{Body: `{"token_type":"Bearer","expires_in":"soon","access_token":"` + accessToken + `"}`}
	var hostile []emulator.Answer
	for range 50 {
		hostile = append(hostile, echo, malformed)
	}
	emu.ScriptToken(hostile...)

	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	p := testenv.StartServe(t, serviceEnv(emu, certFile, srv.URL(), "ON_FAILURE_EXEC=cat"))
	for _, id := range []string{"da637472900382838869_1364969609", "da637200417169017725_183736971"} {
		publish(t, js, id, nil)
	}
	got := waitResults(t, js, 2, time.Minute)
	p.Stop(t)
	g := testenv.StartService(t, testenv.BuildBinary(t), serviceEnv(emu, certFile, srv.URL()), "get", "da637600000000000000_1000000001")
	if code, err := g.Wait(time.Minute); err != nil || code != 1 {
		t.Errorf("get: exit %d (%v), want 1\n%s", code, err, g.Output())
	}

	var haystack strings.Builder
	haystack.WriteString(outputOf(p, g))
	for _, r := range got {
		if r.Status != "failure" {
			t.Errorf("result %s, want a failure", r.Raw)
		}
		haystack.WriteString(r.Raw + "\n")
	}
	text := haystack.String()
	if !strings.Contains(text, "[redacted]") {
		t.Errorf("nothing was redacted, the test proves less:\n%s", text)
	}
	for _, s := range []string{secret, url.QueryEscape(secret), accessToken} {
		for line := range strings.SplitSeq(text, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("%q shows: %s", s, line)
			}
		}
	}
}

// TestOversizedAnswersRSS: 16 requests at once, each answered
// with 100 MiB (half of them without a Content-Length), end as bad_response
// while the process's peak RSS stays bounded by the shared body budget, not
// by CONCURRENCY times the body cap.
func TestOversizedAnswersRSS(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t)
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	// The binary users run: the race detector's shadow memory would
	// multiply what is measured.
	p := testenv.StartService(t, testenv.BuildPlainBinary(t), serviceEnv(emu, cert, srv.URL(), "CONCURRENCY=16", "RETRY_MAX_ELAPSED=1ms", "LOG_LEVEL=info"), "serve")
	p.WaitForLine(t, `"msg":"ready"`, 30*time.Second)
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = fmt.Sprintf("oversized_%02d", i)
		emu.Script(ids[i], emulator.Answer{BodyBytes: 100 << 20, NoLength: i%2 == 0})
	}
	publishAll(t, js, ids)
	for _, r := range waitResults(t, js, len(ids), 2*time.Minute) {
		if r.Status != "failure" || r.Kind() != "bad_response" {
			t.Errorf("%s, want a bad_response failure", r.Raw)
		}
	}
	rss, err := p.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %d MiB", rss>>20)
	const limit = 90 << 20 // 59 MiB measured; 120 MiB before the budget
	if rss > limit {
		t.Errorf("peak RSS %d MiB under 16 answers of 100 MiB, want under %d MiB", rss>>20, limit>>20)
	}
}
