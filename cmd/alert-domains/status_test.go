package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/quota"
)

func TestStatusOneScreen(t *testing.T) {
	o := newOpsEnv(t, true)
	o.vars["QUOTA_SCOPE"] = "process"
	for i, kind := range []message.Kind{message.KindUnavailable, message.KindUnavailable, message.KindNotFound} {
		seq := o.request(t, "f", nil)
		r := message.Failure("f", &connector.Error{Kind: kind, Message: "x"}, i+1, time.Now())
		o.result(t, r, seq)
	}
	seq := o.request(t, "s", nil)
	o.result(t, message.Success("s", nil, 4, false, time.Now()), seq)
	seq = o.request(t, "c", nil)
	o.result(t, message.Success("c", nil, 0, true, time.Now()), seq)

	out := o.mustRun(t, "status")
	for _, want := range []string{
		o.cfg.RequestStream, o.cfg.ResultStream, o.cfg.ConsumerName, o.cfg.ConsumerName + "-max-deliveries",
		"FAILURES IN THE LAST HOUR: 3",
		"unavailable", "not_found",
		"100/1m, 1500/1h per process",
		"1m      100    10 (10%)",
		"1h      1500   10 (0%)",
		"CACHE", "TTL 1h",
		"default  graph  not checked: this environment names no credential (run status with serve's variables)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// Unavailable (2) is listed before not_found (1).
	if strings.Index(out, "unavailable") > strings.Index(out, "not_found") {
		t.Errorf("failure kinds not by count:\n%s", out)
	}
	if strings.Contains(out, "nats://") && strings.Contains(out, "@") {
		t.Errorf("server URL with credentials:\n%s", out)
	}
}

// TestStatusCountsOnlyResultsOfStoredRequests: failures published by
// anyone for a request no longer stored (each with another store time, so
// the duplicate window keeps them all) are neither failures nor quota use.
func TestStatusCountsOnlyResultsOfStoredRequests(t *testing.T) {
	o := newOpsEnv(t, true)
	o.vars["QUOTA_SCOPE"] = "process"
	seq := o.request(t, "da1_2", nil)
	o.request(t, "da1_3", nil)
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(t.Context(), seq); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		m := nats.NewMsg(o.cfg.FailureSubject)
		m.Header.Set(message.HeaderMsgID, message.ResultMsgID(o.cfg.RequestStream, seq, time.Unix(0, int64(i))))
		m.Header.Set(message.HeaderResultStatus, message.StatusFailure)
		m.Data = fmt.Appendf(nil, `{"status":"failure","alertId":"forged","requestSequence":%d,"attempts":50,"error":{"kind":"forbidden","message":"forged"}}`, seq)
		if _, err := o.js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	out := o.mustRun(t, "status")
	if strings.Contains(out, "forbidden") || !strings.Contains(out, "FAILURES IN THE LAST HOUR: none") || !strings.Contains(out, "5 messages on result subjects were not written by the service") {
		t.Errorf("forged failures of a request no longer stored counted:\n%s", out)
	}
}

func TestStatusSharedQuota(t *testing.T) {
	o := newOpsEnv(t, true)
	o.vars["DEFENDER_RATE_LIMITS"] = "20/1m,1500/1h"
	o.vars["AZURE_TENANT_ID"] = "6f1c2b9e-0d4e-4b8a-9a51-2f0c7d3e8a10"
	o.vars["AZURE_CLIENT_ID"] = "2d7e9f40-5b1a-4c3e-8f6d-9a0b1c2d3e4f"
	cfg, err := config.Load(config.MapEnv(o.vars))
	if err != nil {
		t.Fatal(err)
	}
	// The replicas have the credential that status, run below without
	// it, does not need.
	withSecret := maps.Clone(o.vars)
	withSecret["AZURE_CLIENT_SECRET"] = "not-used"
	own, err := config.Load(config.MapEnv(withSecret))
	if err != nil {
		t.Fatal(err)
	}
	ownTenant, err := own.EnvironmentTenant()
	if err != nil {
		t.Fatal(err)
	}
	layout := quota.NewLayout(cfg.ConsumerName, cfg.RateLimits)
	if err := prepareQuotaLimits(t.Context(), o.js, cfg, layout, cfg.RateLimits, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	// Two replicas: 3 calls and 2 calls of the same app registration, and
	// a 429 with Retry-After 30s seen by the second.
	for _, calls := range []int{3, 2} {
		q, err := quota.NewShared(layout, registration(&ownTenant), ownTenant.RateLimits, quota.WithHold(cfg.DefenderTimeout))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = q.Run(ctx, o.js)
		}()
		for range calls {
			release, _, err := q.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			release()
		}
		if calls == 2 {
			q.Cooldown(30 * time.Second)
			testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
				c, err := quota.ReadCooldowns(t.Context(), o.js, cfg.ConsumerName)
				return err == nil && len(c) == 1
			}, "the cooldown stored")
		}
		cancel()
		<-done
	}
	out := o.mustRun(t, "status")
	for _, want := range []string{
		"20/1m, 1500/1h, shared by every replica",
		"public 6f1c2b9e-0d4e-4b8a-9a51-2f0c7d3e8a10/2d7e9f40-5b1a-4c3e-8f6d-9a0b1c2d3e4f",
		"1m      20     5 (25%)",
		"1h      1500   5 (0%)",
		"left)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusWithoutTopology(t *testing.T) {
	o := newOpsEnv(t, false)
	o.vars["DEFENDER_RATE_LIMITS"] = "none"
	o.vars["CACHE_TTL"] = "0"
	code, out, errOut := o.run(t.Context(), "status")
	if code != 1 {
		t.Errorf("status without the topology: exit %d, want 1", code)
	}
	for _, want := range []string{"missing (start 'alert-domains serve' with PROVISION=true)", "off (CACHE_TTL=0)", "none (DEFENDER_RATE_LIMITS=none)", "FAILURES IN THE LAST HOUR: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if want := "missing on nats://"; !strings.Contains(errOut, want) || !strings.Contains(errOut, "stream "+o.cfg.RequestStream) {
		t.Errorf("error %q does not name what is missing", errOut)
	}
}

func TestAgoAndByteSize(t *testing.T) {
	now := time.Now()
	for d, want := range map[time.Duration]string{
		0:                            "just now",
		90 * time.Second:             "1m30s ago",
		3 * time.Hour:                "3h ago",
		3*24*time.Hour + 4*time.Hour: "3d4h ago",
		3 * 24 * time.Hour:           "3d ago",
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestStatusReplicas(t *testing.T) {
	o := newOpsEnv(t, true)
	out := o.mustRun(t, "status")
	if !strings.Contains(out, "REPLICAS: none answered (consumer "+o.cfg.ConsumerName+": 0 waiting pulls)") {
		t.Errorf("status without replicas:\n%s", out)
	}

	// Two replicas on connections of their own: one bound, one not.
	started := time.Now().Add(-90 * time.Second)
	for _, ready := range []func() error{
		func() error { return nil },
		func() error { return errors.New("consumer not bound: stream leader unavailable") },
	} {
		nc, _ := testenv.Connect(t, o.vars["NATS_URL"])
		stop, err := ops.ServePresence(nc, o.cfg, started, ready)
		if err == nil {
			err = nc.Flush() // the server holds the subscription before status asks
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	out = o.mustRun(t, "status")
	for _, want := range []string{
		"REPLICAS: 2 answered, 1 bound",
		"  HOST  PID",
		"1m30s  16           yes",
		"1m30s  16           no: consumer not bound: stream leader unavailable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
