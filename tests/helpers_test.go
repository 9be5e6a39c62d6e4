package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// Default names of the contract.
const (
	requestStream  = "DEFENDER_ALERT_DOMAIN_REQUESTS"
	requestSubject = "defender.alerts.domains.requests"
	resultStream   = "DEFENDER_ALERT_DOMAIN_RESULTS"
	successSubject = "defender.alerts.domains.success"
	failureSubject = "defender.alerts.domains.failure"
	consumerName   = "alert-domains"
)

// serviceEnv is the environment of a service that talks to emu and natsURL,
// tuned for tests (short retries), with extra entries winning.
func serviceEnv(emu *emulator.Server, certFile, natsURL string, extra ...string) []string {
	tuned := []string{
		"DEFENDER_RATE_LIMITS=none",
		"RETRY_INITIAL_INTERVAL=20ms",
		"RETRY_MAX_INTERVAL=200ms",
		"RETRY_MAX_ELAPSED=2s",
		"LOG_LEVEL=debug",
		"CACHE_TTL=0",
	}
	return testenv.ServiceEnv(emu, certFile, natsURL, append(tuned, extra...)...)
}

// publish stores a request and returns its stream sequence.
func publish(t *testing.T, js jetstream.JetStream, body string, header nats.Header) uint64 {
	t.Helper()
	ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: requestSubject, Data: []byte(body), Header: header})
	if err != nil {
		t.Fatalf("publish %q: %v", body, err)
	}
	return ack.Sequence
}

// storedAt is when the request stream stored the request at seq.
func storedAt(t *testing.T, js jetstream.JetStream, seq uint64) time.Time {
	t.Helper()
	st, err := js.Stream(t.Context(), requestStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Time
}

// storedResult is a result with its message.
type storedResult struct {
	message.Result
	Subject string
	Header  nats.Header
	Raw     string
}

// results reads every result stored in the result stream.
func results(t *testing.T, js jetstream.JetStream) []storedResult {
	t.Helper()
	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []storedResult
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			continue // deleted
		}
		var r storedResult
		if err := json.Unmarshal(m.Data, &r.Result); err != nil {
			t.Fatalf("result %d is not JSON: %v: %s", seq, err, m.Data)
		}
		r.Subject, r.Header, r.Raw = m.Subject, m.Header, string(m.Data)
		out = append(out, r)
	}
	return out
}

// waitResults waits until the result stream holds n results, then checks
// that there is exactly one per request sequence and returns them by it.
func waitResults(t *testing.T, js jetstream.JetStream, n int, timeout time.Duration) map[uint64]storedResult {
	t.Helper()
	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, timeout, 20*time.Millisecond, func() bool {
		info, err := st.Info(t.Context())
		return err == nil && info.State.Msgs >= uint64(n)
	}, "%d results", n)
	all := results(t, js)
	if len(all) != n {
		t.Fatalf("%d results stored, want %d", len(all), n)
	}
	bySeq := make(map[uint64]storedResult, n)
	for _, r := range all {
		if prev, dup := bySeq[r.RequestSequence]; dup {
			t.Fatalf("two results for request %d:\n%s\n%s", r.RequestSequence, prev.Raw, r.Raw)
		}
		bySeq[r.RequestSequence] = r
	}
	return bySeq
}

// requestsAllAcked waits until the consumer has nothing pending or unacknowledged.
func requestsAllAcked(t *testing.T, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 20*time.Millisecond, func() bool {
		c, err := js.Consumer(t.Context(), requestStream, consumerName)
		if err != nil {
			return false
		}
		info := c.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	}, "every request acknowledged")
}

// kinds summarises results by status and kind, for failure messages.
func kinds(rs map[uint64]storedResult) string {
	count := map[string]int{}
	for _, r := range rs {
		k := r.Status
		if r.Error != nil {
			k += "/" + string(r.Error.Kind)
		}
		count[k]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, count[k])
	}
	return b.String()
}

// ctxTimeout is a context for one step of a test.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// lastLines is the end of a process's output, for a failure message.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
