package tests

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestTenantsOperations: the operations of one tenant with the real binary.
// Metrics count by the tenants of the file only (a request naming another
// tenant counts under tenant=""); after a reload adds a tenant, its series
// are there from 0, replay --tenant turns that tenant's unknown_tenant
// failure into a success without touching another's, tail --tenant shows
// that tenant's results only, and status has a line for each tenant.
func TestTenantsOperations(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	listen, base := httpEndpoint(t)
	env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam}, "HTTP_LISTEN="+listen)
	file := tenantsFileOf(env)
	full, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	onlyContoso := full[:strings.Index(string(full), "  - name: fabrikam")]
	if err := os.WriteFile(file, onlyContoso, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := testenv.StartServe(t, env)

	ok := publishTo(t, js, requestSubject+".contoso", sharedAlert)
	early := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	other := publishTo(t, js, requestSubject+".evil-name", sharedAlert)
	got := waitResults(t, js, 3, 30*time.Second)
	if got[ok].Status != "success" || got[early].Error == nil || got[early].Error.Kind != "unknown_tenant" || got[other].Error == nil {
		t.Fatalf("results %s", kinds(got))
	}
	var series map[string]float64
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		series = scrapeMetrics(t, base)
		return series[`alert_domains_results_total{api="",kind="unknown_tenant",status="failure",tenant=""}`] == 2
	}, "two unknown_tenant failures counted under no tenant")
	for k, want := range map[string]float64{
		`alert_domains_results_total{api="graph",kind="",status="success",tenant="contoso"}`: 1,
		`alert_domains_defender_calls_total{api="graph",code="200",tenant="contoso"}`:        1,
		`alert_domains_results_total{api="",kind="",status="success",tenant=""}`:             0,
		`alert_domains_results_total{api="",kind="not_found",status="failure",tenant=""}`:    0,
	} {
		if v, found := series[k]; !found || v != want {
			t.Errorf("%s = %v (exported %v), want %v", k, v, found, want)
		}
	}
	for k := range series {
		if strings.Contains(k, "evil-name") || strings.Contains(k, `tenant="fabrikam"`) {
			t.Errorf("series of a tenant that is not configured: %s", k)
		}
	}

	if err := os.WriteFile(file, full, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := svc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"msg":"tenants reloaded"`, 30*time.Second)
	series = scrapeMetrics(t, base)
	if v, found := series[`alert_domains_results_total{api="graph",kind="",status="success",tenant="fabrikam"}`]; !found || v != 0 {
		t.Errorf("fabrikam's results after the reload = %v (exported %v), want 0", v, found)
	}

	code, out := opsCommand(t, env, "replay", "--failed", "--tenant", "fabrikam")
	if code != 0 || !strings.Contains(out, "found 1 failure results") {
		t.Fatalf("replay --tenant fabrikam: exit %d\n%s", code, out)
	}
	got = waitResults(t, js, 4, 30*time.Second)
	var replays []storedResult
	for _, r := range got {
		if r.ReplayOf != 0 {
			replays = append(replays, r)
		}
	}
	if len(replays) != 1 || replays[0].ReplayOf != early || replays[0].Status != "success" || replays[0].Tenant != "fabrikam" {
		t.Errorf("replays %v, want fabrikam's success replaying %d only", replays, early)
	}

	// tail --tenant fabrikam: fabrikam's replayed success (its own subject),
	// not contoso's result nor the failures that name no tenant. The
	// replayed success is the last result stored: once it is shown, every
	// result before it was read.
	tail := testenv.StartService(t, testenv.BuildBinary(t), env, "tail", "--since", "1h", "--json", "--tenant", "fabrikam")
	tail.WaitForLine(t, `"replayOf":`, 30*time.Second)
	if err := tail.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code, err := tail.Wait(10 * time.Second); code != 0 || err != nil {
		t.Fatalf("tail on Ctrl-C: exit %d %v\n%s", code, err, tail.Output())
	}
	var shown []string
	for line := range strings.Lines(tail.Output()) {
		if strings.HasPrefix(line, "{") {
			shown = append(shown, line)
		}
	}
	if len(shown) != 1 || !strings.Contains(shown[0], `"tenant":"fabrikam"`) || !strings.Contains(shown[0], `"status":"success"`) {
		t.Errorf("tail --tenant fabrikam showed %q, want fabrikam's success only", shown)
	}

	code, out = opsCommand(t, env, "status")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for _, want := range []string{"TENANTS: 2 configured", "  contoso ", "  fabrikam ", "(none named)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// The failure of the made-up tenant names none: no line of its own.
	if strings.Contains(out, "evil-name") {
		t.Errorf("status has a line for a tenant a request made up:\n%s", out)
	}
	svc.Stop(t)
}
