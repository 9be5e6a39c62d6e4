package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// tenantEmulator is one customer's Entra and Defender: its own app
// registration and secret, and its own answer for the alert sharedAlert.
type tenantEmulator struct {
	name   string
	emu    *emulator.Server
	secret string
	// rateLimits is the tenant's rateLimits in the file, when not empty.
	rateLimits string
}

const sharedAlert = "da638000000000000000_1111111111"

func startTenantEmulator(t *testing.T, name string, n int, cfg emulator.Config) (tenantEmulator, string) {
	t.Helper()
	secret := name + "-secret-" + fmt.Sprint(n)
	cfg.TenantID = fmt.Sprintf("6f1c2b9e-0000-4000-8000-00000000000%d", n)
	cfg.ClientID = fmt.Sprintf("0a3e5f7d-0000-4000-8000-00000000000%d", n)
	cfg.ClientSecret = secret
	cfg.Alerts = map[string][]string{sharedAlert: {"c2." + name + ".example"}}
	emu, cert := testenv.StartEmulator(t, cfg)
	return tenantEmulator{name: name, emu: emu, secret: secret}, cert
}

// tenantsFileOf is the TENANTS_FILE of env.
func tenantsFileOf(env []string) string {
	i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TENANTS_FILE=") })
	return strings.TrimPrefix(env[i], "TENANTS_FILE=")
}

// tenantsEnv writes the tenants file of ts (contoso's secret in a file,
// fabrikam's in a variable) and returns the environment of a service that
// serves them: no AZURE_* registration, every emulator's certificate
// trusted.
func tenantsEnv(t *testing.T, natsURL string, certs []string, ts []tenantEmulator, extra ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var pems []byte
	for _, c := range certs {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, b...)
	}
	bundle := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, pems, 0o600); err != nil {
		t.Fatal(err)
	}
	var doc strings.Builder
	doc.WriteString("tenants:\n")
	env := []string{
		"NATS_URL=" + natsURL,
		"SSL_CERT_FILE=" + bundle,
		"HTTP_LISTEN=",
		"LOG_FORMAT=json",
		"LOG_LEVEL=debug",
		"DEFENDER_RATE_LIMITS=none",
		"RETRY_INITIAL_INTERVAL=20ms",
		"RETRY_MAX_INTERVAL=200ms",
		"RETRY_MAX_ELAPSED=2s",
	}
	for i, te := range ts {
		fmt.Fprintf(&doc, "  - name: %s\n    tenantId: %s\n    clientId: %s\n    apiUrl: %s\n    authorityHost: %s\n",
			te.name, te.emu.TenantID(), te.emu.ClientID(), te.emu.URL, te.emu.AuthorityHost())
		if te.rateLimits != "" {
			fmt.Fprintf(&doc, "    rateLimits: %s\n", te.rateLimits)
		}
		if i%2 == 0 {
			f := filepath.Join(dir, te.name+".secret")
			if err := os.WriteFile(f, []byte(te.secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&doc, "    clientSecretFile: %s\n", f)
		} else {
			v := strings.ToUpper(te.name) + "_SECRET"
			fmt.Fprintf(&doc, "    clientSecretEnv: %s\n", v)
			env = append(env, v+"="+te.secret)
		}
	}
	file := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(file, []byte(doc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return append(append(env, "TENANTS_FILE="+file), extra...)
}

func publishTo(t *testing.T, js jetstream.JetStream, subject, body string) uint64 {
	t.Helper()
	ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// TestTenantsKeepTheirAnswersApart: two tenants, each with its own secret
// and its own answer for the same alert ID. Each call uses its tenant's
// token (each emulator only knows its own registration and secret), each
// result goes to its tenant's subjects with its tenant's domains, and asking
// both again is answered from each tenant's own cache entry.
func TestTenantsKeepTheirAnswersApart(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	svc := testenv.StartServe(t, tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam}, "CACHE_TTL=1h"))

	ask := func() map[uint64]string {
		return map[uint64]string{
			publishTo(t, js, requestSubject+".contoso", sharedAlert):                                              "contoso",
			publishTo(t, js, requestSubject, `{"alertId":"`+sharedAlert+`","tenant":"fabrikam"}`):                 "fabrikam",
			publishTo(t, js, requestSubject, `{"id":"`+sharedAlert+`","tenantId":"`+fabrikam.emu.TenantID()+`"}`): "fabrikam",
		}
	}
	check := func(got map[uint64]storedResult, asked map[uint64]string, cached bool) {
		t.Helper()
		for seq, tenant := range asked {
			r := got[seq]
			wantDomains := []string{"c2." + tenant + ".example"}
			if r.Status != "success" || r.Tenant != tenant || r.Header.Get(message.HeaderTenant) != tenant ||
				r.Subject != successSubject+"."+tenant || !slices.Equal(r.Domains, wantDomains) {
				t.Errorf("request %d for %s: result on %s: %s", seq, tenant, r.Subject, r.Raw)
			}
			if cached && (r.Cached == nil || !*r.Cached) {
				t.Errorf("request %d for %s asked again was not answered from the cache: %s", seq, tenant, r.Raw)
			}
		}
	}
	first := ask()
	got := waitResults(t, js, 3, 30*time.Second)
	check(got, first, false)
	for _, te := range []tenantEmulator{contoso, fabrikam} {
		if n := te.emu.CallsFor(sharedAlert); n < 1 || n > 2 {
			t.Errorf("%s's Defender was called %d times for the alert", te.name, n)
		}
		if n := te.emu.TokensIssued(); n != 1 {
			t.Errorf("%s's Entra issued %d tokens, want 1", te.name, n)
		}
	}
	callsA, callsB := contoso.emu.CallsFor(sharedAlert), fabrikam.emu.CallsFor(sharedAlert)

	again := ask()
	got = waitResults(t, js, 6, 30*time.Second)
	check(got, again, true)
	if contoso.emu.CallsFor(sharedAlert) != callsA || fabrikam.emu.CallsFor(sharedAlert) != callsB {
		t.Errorf("asking again called Defender: contoso %d -> %d, fabrikam %d -> %d",
			callsA, contoso.emu.CallsFor(sharedAlert), callsB, fabrikam.emu.CallsFor(sharedAlert))
	}
	requestsAllAcked(t, js, 10*time.Second)
	if out := svc.Output(); strings.Contains(out, contoso.secret) || strings.Contains(out, fabrikam.secret) {
		t.Error("a tenant's secret is in the log")
	}
	svc.Stop(t)
}

// TestTenantsUnknownAndConflicting: a request for a tenant that is not in
// the file fails with unknown_tenant (acknowledged); one that names no
// tenant when none is called default too; two names that disagree are
// invalid_request, answered on the subject's tenant's failure subject.
func TestTenantsUnknownAndConflicting(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	svc := testenv.StartServe(t, tenantsEnv(t, srv.URL(), []string{certA}, []tenantEmulator{contoso}))

	unknown := publishTo(t, js, requestSubject+".initech", sharedAlert)
	unnamed := publishTo(t, js, requestSubject, sharedAlert)
	conflict := publishTo(t, js, requestSubject+".contoso", `{"alertId":"`+sharedAlert+`","tenant":"initech"}`)
	got := waitResults(t, js, 3, 30*time.Second)
	for _, c := range []struct {
		seq           uint64
		kind, subject string
		tenant        string
	}{
		{unknown, "unknown_tenant", failureSubject, ""},
		{unnamed, "unknown_tenant", failureSubject, ""},
		{conflict, "invalid_request", failureSubject + ".contoso", "contoso"},
	} {
		r := got[c.seq]
		if r.Error == nil || string(r.Error.Kind) != c.kind || r.Subject != c.subject || r.Tenant != c.tenant || r.Request == nil {
			t.Errorf("request %d: want %s on %s (tenant %q): %s on %s", c.seq, c.kind, c.subject, c.tenant, r.Raw, r.Subject)
		}
	}
	requestsAllAcked(t, js, 10*time.Second)
	if n := contoso.emu.Calls(); n != 0 {
		t.Errorf("Defender called %d times for requests that could not be routed", n)
	}
	svc.Stop(t)
}

// TestTenantsFileErrorsExitTwo: a tenants file with an inline secret is a
// configuration error: exit status 2, naming the tenant and the field, and
// never the secret.
func TestTenantsFileErrorsExitTwo(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATS(t)
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	doc := "tenants:\n  - name: contoso\n    tenantId: 6f1c2b9e-0000-4000-8000-000000000001\n    clientId: 0a3e5f7d-0000-4000-8000-000000000002\n    clientSecret: s3cr3t-inline-value\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartService(t, testenv.BuildBinary(t), []string{"NATS_URL=" + srv.URL(), "HTTP_LISTEN=", "LOG_FORMAT=json", "TENANTS_FILE=" + file}, "serve")
	code, err := p.Wait(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out := p.Output()
	if code != 2 || !strings.Contains(out, `"contoso"`) || !strings.Contains(out, "clientSecret") || strings.Contains(out, "s3cr3t-inline-value") {
		t.Errorf("exit status %d, want 2 naming tenant and field without the secret:\n%s", code, out)
	}
}

// TestTenantsReplayUnknownTenant: a request for a tenant not yet in the
// file fails with unknown_tenant; once the tenant is added (a restart with
// the new file), replay --failed --kind unknown_tenant republishes it to
// the subject it was first published to, and it ends in a success of that
// tenant on the tenant's own subject.
func TestTenantsReplayUnknownTenant(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	certs := []string{certA, certB}
	before := testenv.StartServe(t, tenantsEnv(t, srv.URL(), certs, []tenantEmulator{contoso}))
	seq := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	if r := waitResults(t, js, 1, 30*time.Second)[seq]; r.Error == nil || r.Error.Kind != "unknown_tenant" {
		t.Fatalf("result %s, want unknown_tenant", r.Raw)
	}
	requestsAllAcked(t, js, 10*time.Second)
	before.Stop(t)

	env := tenantsEnv(t, srv.URL(), certs, []tenantEmulator{contoso, fabrikam})
	after := testenv.StartServe(t, env)
	code, out := opsCommand(t, env, "replay", "--failed", "--kind", "unknown_tenant")
	if code != 0 {
		t.Fatalf("replay exit %d\n%s", code, out)
	}
	got := waitResults(t, js, 2, 30*time.Second)
	var replayed *storedResult
	for _, r := range got {
		if r.ReplayOf == seq {
			replayed = &r
		}
	}
	if replayed == nil || replayed.Status != "success" || replayed.Tenant != "fabrikam" || replayed.Subject != successSubject+".fabrikam" ||
		!slices.Equal(replayed.Domains, []string{"c2.fabrikam.example"}) {
		t.Errorf("results %s, want a success of fabrikam replaying %d", kinds(got), seq)
	}
	if fabrikam.emu.CallsFor(sharedAlert) != 1 || contoso.emu.Calls() != 0 {
		t.Errorf("calls: fabrikam %d, contoso %d", fabrikam.emu.CallsFor(sharedAlert), contoso.emu.Calls())
	}
	after.Stop(t)
}

// TestTenantsSafetyNetKeepsTheTenant: a tenant's request that runs out of
// deliveries (the result stream takes no success results for a while) is
// answered by the safety net as the handler would have: with its tenant's
// cached success, on its tenant's success subject, never another tenant's
// answer for the same alert.
func TestTenantsSafetyNetKeepsTheTenant(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	testenv.StartServe(t, tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam}, "CACHE_TTL=1h", "MAX_DELIVER=2", "ACK_WAIT=1s"))
	publishTo(t, js, requestSubject+".contoso", sharedAlert)
	publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	waitResults(t, js, 2, 30*time.Second)

	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	blocked := cfg
	blocked.Subjects = []string{failureSubject, failureSubject + ".*"}
	if _, err := js.UpdateStream(t.Context(), blocked); err != nil {
		t.Fatal(err)
	}
	seq := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	testenv.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool {
		c, err := js.Consumer(t.Context(), requestStream, consumerName+"-max-deliveries")
		return err == nil && c.CachedInfo().Delivered.Stream > seq
	}, "the safety net to take the advisory")
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	r := waitResults(t, js, 3, 30*time.Second)[seq]
	if r.Status != "success" || r.Tenant != "fabrikam" || r.Subject != successSubject+".fabrikam" || !slices.Equal(r.Domains, []string{"c2.fabrikam.example"}) {
		t.Errorf("safety net answer %s on %s, want fabrikam's cached success on its subject", r.Raw, r.Subject)
	}
}

// TestTenantsReloadOnHangup: a request for a tenant not yet in the file
// fails with unknown_tenant; the tenant is added to the file and the
// service gets SIGHUP: new requests for it succeed, and replay turns the
// old failure into a success. An invalid file is then refused with a log
// line, and the running tenants go on being served.
func TestTenantsReloadOnHangup(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam})
	file := tenantsFileOf(env)
	full, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(string(full[:strings.Index(string(full), "  - name: fabrikam")]))
	svc := testenv.StartServe(t, env)

	early := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	if r := waitResults(t, js, 1, 30*time.Second)[early]; r.Error == nil || r.Error.Kind != "unknown_tenant" {
		t.Fatalf("before the reload: %s, want unknown_tenant", r.Raw)
	}

	write(string(full))
	if err := svc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"msg":"tenants reloaded"`, 30*time.Second)
	later := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	if r := waitResults(t, js, 2, 30*time.Second)[later]; r.Status != "success" || r.Tenant != "fabrikam" || r.Subject != successSubject+".fabrikam" {
		t.Errorf("after the reload: %s on %s, want fabrikam's success", r.Raw, r.Subject)
	}
	if code, out := opsCommand(t, env, "replay", "--failed", "--kind", "unknown_tenant"); code != 0 {
		t.Fatalf("replay exit %d\n%s", code, out)
	}
	got := waitResults(t, js, 3, 30*time.Second)
	replayed := false
	for _, r := range got {
		replayed = replayed || (r.ReplayOf == early && r.Status == "success" && r.Tenant == "fabrikam")
	}
	if !replayed {
		t.Errorf("results %s: the unknown_tenant failure was not turned into fabrikam's success", kinds(got))
	}

	write("tenants: [")
	if err := svc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"msg":"tenants file not reloaded: the running tenants stay"`, 30*time.Second)
	a := publishTo(t, js, requestSubject+".contoso", sharedAlert)
	b := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	got = waitResults(t, js, 5, 30*time.Second)
	for seq, tenant := range map[uint64]string{a: "contoso", b: "fabrikam"} {
		if r := got[seq]; r.Status != "success" || r.Tenant != tenant {
			t.Errorf("after a refused reload, %s: %s", tenant, r.Raw)
		}
	}
	if contoso.emu.TokensIssued() != 1 {
		t.Errorf("contoso's Entra issued %d tokens: the reload did not keep its client", contoso.emu.TokensIssued())
	}
	svc.Stop(t)
}

// TestTenantsReloadOnFileChange: a change of the file's content (a mounted
// Secret or ConfigMap updated in place) is picked up without a signal.
func TestTenantsReloadOnFileChange(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam})
	file := tenantsFileOf(env)
	full, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, full[:strings.Index(string(full), "  - name: fabrikam")], 0o600); err != nil {
		t.Fatal(err)
	}
	svc := testenv.StartServe(t, env)
	if err := os.WriteFile(file, full, 0o600); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"reason":"file changed"`, 30*time.Second)
	seq := publishTo(t, js, requestSubject+".fabrikam", sharedAlert)
	if r := waitResults(t, js, 1, 30*time.Second)[seq]; r.Status != "success" || r.Tenant != "fabrikam" {
		t.Errorf("after the file changed: %s", r.Raw)
	}
	svc.Stop(t)
}

// TestTenantsReloadOnCredentialFileChange: a rotated clientSecretFile (a
// mounted Secret updated in place) is picked up without a signal: a tenant
// refused with the old secret is served with the new one.
func TestTenantsReloadOnCredentialFileChange(t *testing.T) {
	t.Parallel()
	contoso, cert := startTenantEmulator(t, "contoso", 1, emulator.Config{})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := tenantsEnv(t, srv.URL(), []string{cert}, []tenantEmulator{contoso})
	file := tenantsFileOf(env)
	secret := filepath.Join(filepath.Dir(file), "contoso.secret")
	if err := os.WriteFile(secret, []byte("an-old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := testenv.StartServe(t, env)
	early := publishTo(t, js, requestSubject+".contoso", sharedAlert)
	if r := waitResults(t, js, 1, 30*time.Second)[early]; r.Error == nil || r.Error.Kind != "unauthorized" {
		t.Fatalf("with the old secret: %s, want unauthorized", r.Raw)
	}
	if err := os.WriteFile(secret, []byte(contoso.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc.WaitForLine(t, `"reason":"file changed"`, 30*time.Second)
	later := publishTo(t, js, requestSubject+".contoso", sharedAlert)
	if r := waitResults(t, js, 2, 30*time.Second)[later]; r.Status != "success" || r.Tenant != "contoso" {
		t.Errorf("after the secret changed: %s, want contoso's success", r.Raw)
	}
	svc.Stop(t)
}
