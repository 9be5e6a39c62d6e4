package tests

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestDemo runs the README's first command: it must show every sample's
// result and exit 0 on a machine with nothing but the binary.
func TestDemo(t *testing.T) {
	t.Parallel()
	p := testenv.StartService(t, testenv.BuildBinary(t), nil, "demo")
	code, err := p.Wait(90 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("demo exit %d (%v)\n%s", code, err, p.Output())
	}
	out := p.Output()
	for _, want := range []string{
		"DEFENDER_API=graph",               // the default API
		"www.example.com, cdn.example.net", // two domains
		"success  2        no     portal.example.net, mail.example.net (graphAlertId da637612345678901234_1122334455)", // an endpoint ID, asked again as Graph's
		"no     [] (graphAlertId", // no domains
		"not_found",               // unknown alert
		"forbidden",               // the permission missing
		"SecurityAlert.Read.All",  // and named
		"bad_response",            // not the documented JSON
		"invalid_request",         // invalid ID
		"unknown_tenant",          // a tenant not configured
		"yes",                     // cached repeat
		"10 requests, 10 results",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestPublishPrintsSequences(t *testing.T) {
	t.Parallel()
	emu, cert := testenv.StartEmulator(t, emulator.Config{AnyAlert: true})
	_, url := testenv.EmbeddedJetStream(t)
	testenv.StartServe(t, serviceEnv(emu, cert, url))
	bin := testenv.BuildBinary(t)
	p := testenv.StartService(t, bin, []string{"NATS_URL=" + url, "LOG_FORMAT=json"}, "publish", "-correlation-id", "siem-9", "alert_a", "alert_b")
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("publish exit %d (%v)\n%s", code, err, p.Output())
	}
	var seqs []uint64
	for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 {
		t.Fatalf("publish printed %v, want sequences 1 and 2:\n%s", seqs, p.Output())
	}
	_, js := testenv.Connect(t, url)
	got := waitResults(t, js, 2, 30*time.Second)
	if got[1].AlertID != "alert_a" || got[2].AlertID != "alert_b" || got[1].CorrelationID != "siem-9" {
		t.Errorf("results %s / %s", got[1].Raw, got[2].Raw)
	}
}

func TestHelpListsCommandsAndVariables(t *testing.T) {
	t.Parallel()
	p := testenv.StartService(t, testenv.BuildBinary(t), nil, "help")
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("help exit %d (%v)", code, err)
	}
	out := p.Output()
	for _, want := range []string{"serve", "demo", "get", "publish", "emulate", "replay", "tail", "status",
		"NATS_URL", "DEFENDER_RATE_LIMITS", "100/1m,1500/1h", "CACHE_TTL", "AZURE_CLIENT_SECRET"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	p = testenv.StartService(t, testenv.BuildBinary(t), nil, "serve", "-h")
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Errorf("serve -h exit %d (%v)", code, err)
	}
	for _, args := range [][]string{{"frobnicate"}, {"help", "frobnicate"}, {"help", "kinds", "extra"}} {
		p = testenv.StartService(t, testenv.BuildBinary(t), nil, args...)
		if code, _ := p.Wait(30 * time.Second); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
