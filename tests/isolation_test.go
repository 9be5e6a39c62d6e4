package tests

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// tenantResults counts the stored results of tenant by status.
func tenantResults(t *testing.T, rs []storedResult, tenant string) (success, failure int, kinds map[string]int) {
	t.Helper()
	kinds = map[string]int{}
	for _, r := range rs {
		if r.Tenant != tenant {
			continue
		}
		if r.Status == "success" {
			success++
			continue
		}
		failure++
		kinds[string(r.Kind())]++
	}
	return success, failure, kinds
}

// TestTenantOutOfQuotaHoldsNoWorkers: with CONCURRENCY=4, a tenant limited
// to 2 calls per 20 s has 8 requests queued; a second tenant's 6 requests,
// published after them, are all answered within seconds, while the first
// tenant's wait for their quota.
func TestTenantOutOfQuotaHoldsNoWorkers(t *testing.T) {
	t.Parallel()
	for _, scope := range []string{"shared", "process"} {
		t.Run(scope, func(t *testing.T) {
			t.Parallel()
			contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{AnyAlert: true})
			contoso.rateLimits = "2/20s"
			fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{AnyAlert: true})
			srv := testenv.StartNATS(t)
			js := srv.JetStream(t)
			env := tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam},
				"CONCURRENCY=4", "QUOTA_SCOPE="+scope, "LOG_LEVEL=info")
			testenv.StartServe(t, env)

			for i := range 8 {
				publishTo(t, js, requestSubject+".contoso", fmt.Sprintf("da63800000000000000%d_1", i))
			}
			testenv.Eventually(t, 30*time.Second, 10*time.Millisecond, func() bool { return contoso.emu.Calls() == 2 }, "contoso's 2 calls")
			published := time.Now()
			for i := range 6 {
				publishTo(t, js, requestSubject+".fabrikam", fmt.Sprintf("da63800000000000001%d_2", i))
			}
			testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
				ok, _, _ := tenantResults(t, results(t, js), "fabrikam")
				return ok == 6
			}, "fabrikam's 6 results")
			took := time.Since(published)
			rs := results(t, js)
			if ok, failed, kinds := tenantResults(t, rs, "contoso"); ok != 2 || failed != 0 {
				t.Errorf("contoso: %d successes and %d failures (%v) while its quota allowed 2; the test proves nothing", ok, failed, kinds)
			}
			if n := contoso.emu.Calls(); n != 2 {
				t.Errorf("contoso's Defender saw %d calls within its quota of 2/20s", n)
			}
			if took > 5*time.Second {
				t.Errorf("fabrikam's 6 requests took %v behind contoso's backlog, want a few seconds", took.Round(time.Millisecond))
			}
			t.Logf("fabrikam's 6 requests answered in %v while 6 of contoso's waited for their quota", took.Round(time.Millisecond))

			// status shows what waits, per tenant: REQUESTS STORED, then PENDING.
			code, out := opsCommand(t, env, "status")
			if code != 0 {
				t.Fatalf("status: exit %d\n%s", code, out)
			}
			want := map[string][]string{"contoso": {"2", "0", "8", "6"}, "fabrikam": {"6", "0", "6", "0"}}
			for line := range strings.Lines(out) {
				f := strings.Fields(line)
				if len(f) < 5 || want[f[0]] == nil {
					continue
				}
				if got := f[1:5]; !slices.Equal(got, want[f[0]]) {
					t.Errorf("status line of %s: results, failures, stored, pending %v, want %v:\n%s", f[0], got, want[f[0]], out)
				}
				delete(want, f[0])
			}
			if len(want) > 0 {
				t.Errorf("status has no line for %v:\n%s", want, out)
			}
		})
	}
}

// TestTenantRevokedBesideHealthyOne: a tenant whose every call is answered
// 401 (its consent revoked) next to a healthy one: the revoked tenant's
// requests fail as unauthorized, the healthy tenant's all succeed, and
// none waits behind the other's.
func TestTenantRevokedBesideHealthyOne(t *testing.T) {
	t.Parallel()
	contoso, certA := startTenantEmulator(t, "contoso", 1, emulator.Config{AnyAlert: true})
	fabrikam, certB := startTenantEmulator(t, "fabrikam", 2, emulator.Config{AnyAlert: true})
	contoso.emu.SetOutage(http.StatusUnauthorized)
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	svc := testenv.StartServe(t, tenantsEnv(t, srv.URL(), []string{certA, certB}, []tenantEmulator{contoso, fabrikam}, "CONCURRENCY=4"))

	const n = 20
	for i := range n {
		publishTo(t, js, requestSubject+".contoso", fmt.Sprintf("da63800000000000002%d_1", i))
		publishTo(t, js, requestSubject+".fabrikam", fmt.Sprintf("da63800000000000003%d_2", i))
	}
	waitResults(t, js, 2*n, 60*time.Second)
	rs := results(t, js)
	if ok, failed, kinds := tenantResults(t, rs, "fabrikam"); ok != n || failed != 0 {
		t.Errorf("fabrikam beside a revoked tenant: %d successes, %d failures %v, want %d successes", ok, failed, kinds, n)
	}
	if ok, failed, kinds := tenantResults(t, rs, "contoso"); ok != 0 || kinds["unauthorized"] != n {
		t.Errorf("revoked contoso: %d successes, %d failures %v, want %d unauthorized", ok, failed, kinds, n)
	}
	if fabrikam.emu.Answered(http.StatusOK) != n {
		t.Errorf("fabrikam's Defender answered %d calls with 200, want %d", fabrikam.emu.Answered(http.StatusOK), n)
	}
	requestsAllAcked(t, js, 10*time.Second)
	if out := svc.Output(); strings.Contains(out, contoso.secret) || strings.Contains(out, fabrikam.secret) {
		t.Error("a tenant's secret is in the log")
	}
}
