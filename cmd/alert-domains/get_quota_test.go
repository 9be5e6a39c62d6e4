package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestGetJoinsSharedQuota: two `get` runs against the same NATS share the
// quota (2 calls per hour): the second finds it used up and makes no call;
// without NATS it counts alone and makes its call.
func TestGetJoinsSharedQuota(t *testing.T) {
	srv := emulator.NewServer(emulator.Config{SeedData: true})
	t.Cleanup(srv.Close)
	_, natsURL := testenv.EmbeddedJetStream(t)
	id := "da637472900382838869_1364969609"
	withNATS := getEnv(srv, "NATS_URL", natsURL, "DEFENDER_RATE_LIMITS", "2/1h")

	if r := runGetTest(t, srv, withNATS, "", id, id); r.err != nil {
		t.Fatalf("first get: %v\n%s", r.err, r.stderr)
	}
	if srv.Calls() != 2 {
		t.Fatalf("%d calls, want 2", srv.Calls())
	}

	// The second run waits for the shared quota, so it is cut short.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	e := &env{lookupEnv: withNATS, stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, hc: srv.Client()}
	if err := runGet(ctx, e, []string{id}); err == nil {
		t.Fatalf("second get succeeded past a used-up shared quota:\n%s", stdout.String())
	}
	if srv.Calls() != 2 {
		t.Errorf("%d calls, want still 2: the second get did not wait for the shared quota", srv.Calls())
	}

	// A get configured with another count joins nothing it would redefine:
	// it makes no call, and the streams keep serve's count.
	other := getEnv(srv, "NATS_URL", natsURL, "DEFENDER_RATE_LIMITS", "150/1h")
	if r := runGetTest(t, srv, other, "", id); r.err == nil || srv.Calls() != 2 ||
		!strings.Contains(r.err.Error(), "the shared quota cannot be used, so no call is made") || !strings.Contains(r.err.Error(), "allows 2 calls per window") {
		t.Fatalf("get with another count: %v, %d calls, want an error and still 2\n%s", r.err, srv.Calls(), r.stderr)
	}

	alone := getEnv(srv, "DEFENDER_RATE_LIMITS", "2/1h")
	r := runGetTest(t, srv, alone, "", id)
	if r.err != nil || srv.Calls() != 3 {
		t.Fatalf("get without NATS: %v, %d calls, want 3\n%s", r.err, srv.Calls(), r.stderr)
	}
	if want := "counting the quota alone (2/1h in this process, not with serve's replicas): NATS_URL is empty"; !strings.Contains(r.stderr, want) {
		t.Errorf("get with NATS_URL empty: stderr %q lacks %q", r.stderr, want)
	}
	unreachable := getEnv(srv, "NATS_URL", "nats://127.0.0.1:1", "DEFENDER_RATE_LIMITS", "2/1h")
	if r := runGetTest(t, srv, unreachable, "", id); r.err != nil || !strings.Contains(r.stderr, "counting the quota alone") {
		t.Fatalf("get with NATS unreachable: %v\n%s", r.err, r.stderr)
	}
}
