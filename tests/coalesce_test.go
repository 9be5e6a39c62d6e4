package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// TestBurstForOneAlertOneCallAcrossReplicas: three replicas, a Defender
// that answers in 300 ms, and a burst of 30 requests for one alert
// interleaved with 30 for another, all published at once: one Defender
// call per alert, not one per replica, and exactly one success result with
// the alert's domains per request. Each replica takes part of the burst.
func TestBurstForOneAlertOneCallAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server and three alert-domains processes")
	}
	srv := testenv.StartNATS(t)
	burstOneCall(t, srv.URL(), srv.JetStream(t))
}

// TestBurstForOneAlertOneCallOnCluster is TestBurstForOneAlertOneCallAcrossReplicas
// on a three-node cluster with STREAM_REPLICAS=3, each replica given the
// three URLs (so that replicas and the claims' leader sit on different
// servers).
func TestBurstForOneAlertOneCallOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-servers and three alert-domains processes")
	}
	cluster := testenv.StartNATSCluster(t, 3)
	burstOneCall(t, cluster.URLs(), cluster.JetStream(t), "STREAM_REPLICAS=3")
}

func burstOneCall(t *testing.T, natsURL string, js jetstream.JetStream, extra ...string) {
	const perAlert = 30
	emu := newRecordingEmulator(t, emulator.WithAnyAlert(), emulator.WithLatency(300*time.Millisecond))
	// Enough workers for the whole burst at once: every replica gets part
	// of it, and a request that waits for a worker cannot be answered by
	// the cache instead.
	replicas := quotaReplicas(t, emu, natsURL, 3, append([]string{"CONCURRENCY=24", "CACHE_TTL=1h", "DEFENDER_RATE_LIMITS=none"}, extra...)...)
	for _, p := range replicas {
		p.WaitForLine(t, sharingOn, 10*time.Second)
	}

	alerts := []string{"da637472900382838869_1364969609", "636688558380765161_2136280442"}
	var bodies []string
	for range perAlert {
		bodies = append(bodies, alerts...)
	}
	seqs := publishAll(t, js, bodies)
	got := waitResults(t, js, len(bodies), time.Minute)
	requestsAllAcked(t, js, 30*time.Second)

	domains := map[string][]string{}
	calledFor := map[string]int{}
	for i, seq := range seqs {
		r := got[seq]
		if r.Status != "success" || r.AlertID != bodies[i] || len(r.Domains) == 0 {
			t.Fatalf("request %d (%s): %s, want a success with domains; by kind: %s", seq, bodies[i], r.Raw, kinds(got))
		}
		if want, seen := domains[r.AlertID]; seen && !slices.Equal(want, r.Domains) {
			t.Errorf("request %d: domains %v, another request for %s got %v", seq, r.Domains, r.AlertID, want)
		}
		domains[r.AlertID] = r.Domains
		if r.Attempts > 0 {
			calledFor[r.AlertID]++
		}
	}
	calls := map[string]int{}
	for _, c := range emu.Recorded() {
		calls[c.Alert]++
	}
	for _, a := range alerts {
		if calls[a] != 1 || calledFor[a] != 1 {
			t.Errorf("alert %s: %d Defender calls, %d results that made one; want exactly 1 for %d requests over 3 replicas",
				a, calls[a], calledFor[a], perAlert)
		}
	}
	for i, p := range replicas {
		if n := strings.Count(p.Output(), `"msg":"success result stored"`); n == 0 {
			t.Errorf("replica %d stored no result: the burst did not spread over the replicas", i+1)
		}
	}
	if t.Failed() {
		for i, p := range replicas {
			t.Logf("replica %d:\n%s", i+1, lastLines(p.Output(), 40))
		}
		return
	}

	// The others gone, the last replica shares calls within itself only
	// (no claim to write), and a burst still costs it one call.
	stopService(t, replicas[1])
	stopService(t, replicas[2])
	replicas[0].WaitForLine(t, sharingOff, 15*time.Second)
	alone := "da637551227677560813_-961444813"
	more := make([]string, perAlert)
	for i := range more {
		more[i] = alone
	}
	claimsBefore := claimsWritten(t, js)
	if claimsBefore < 2 {
		t.Errorf("%d claims written for the burst over 3 replicas, want one per call at least", claimsBefore)
	}
	publishAll(t, js, more)
	got = waitResults(t, js, len(bodies)+perAlert, time.Minute)
	if n := claimsWritten(t, js); n != claimsBefore {
		t.Errorf("the replica alone wrote %d claims, want none", n-claimsBefore)
	}
	for _, r := range got {
		if r.AlertID == alone && r.Status != "success" {
			t.Fatalf("request %d: %s, want a success", r.RequestSequence, r.Raw)
		}
	}
	calls = map[string]int{}
	for _, c := range emu.Recorded() {
		calls[c.Alert]++
	}
	if calls[alone] != 1 {
		t.Errorf("alert %s on one replica: %d Defender calls, want 1", alone, calls[alone])
	}
}

// claimsWritten is the number of claims ever written to the claims stream.
func claimsWritten(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), consumerName+"-flights")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// The log lines of a replica that starts and stops sharing Defender calls
// with other replicas.
const (
	sharingOn  = `"msg":"other replicas run: a Defender call for an alert is shared with them"`
	sharingOff = `"msg":"no other replica heard of: Defender calls are shared within this process only"`
)

// lastLines is the end of a process's output, for a failure message.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
