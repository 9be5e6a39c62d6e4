package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// defenderCall is one domains call as the recording emulator saw it.
type defenderCall struct {
	At         time.Time // when it arrived
	Alert      string
	Status     int
	RetryAfter time.Duration // of a 429 or 5xx answer
}

// recordingEmulator is the Defender + Entra emulator behind a recorder that
// keeps, for each domains call, its arrival, alert and answer, and every
// access token the token endpoint hands out, which the emulator does not
// expose. It can also throttle (SetThrottle), which the emulator cannot
// switch on and off.
type recordingEmulator struct {
	*emulator.Emulator
	URL      string
	CertFile string

	mu       sync.Mutex
	calls    []defenderCall
	tokens   []string
	throttle time.Duration // > 0: every domains call is answered 429 with this Retry-After
}

func newRecordingEmulator(t *testing.T, cfg emulator.Config) *recordingEmulator {
	t.Helper()
	r := &recordingEmulator{Emulator: emulator.NewHandler(cfg)}
	ts := httptest.NewUnstartedServer(r)
	ts.Config.ErrorLog = log.New(&bytes.Buffer{}, "", 0) // clients that hang up early are expected
	ts.StartTLS()
	t.Cleanup(func() {
		r.Emulator.Close() // ends slow answers first
		ts.Close()
	})
	r.URL = ts.URL
	r.CertFile = testenv.WriteCertificate(t, ts.Certificate())
	return r
}

// env is serviceEnv for this emulator.
func (r *recordingEmulator) env(natsURL string, extra ...string) []string {
	return serviceEnv(&emulator.Server{Emulator: r.Emulator, URL: r.URL}, r.CertFile, natsURL, extra...)
}

func (r *recordingEmulator) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case strings.HasSuffix(req.URL.Path, "/oauth2/v2.0/token"):
		rec := &recordingWriter{ResponseWriter: w, keep: true}
		r.Emulator.ServeHTTP(rec, req)
		var answer struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(rec.body.Bytes(), &answer) == nil && answer.AccessToken != "" {
			r.mu.Lock()
			r.tokens = append(r.tokens, answer.AccessToken)
			r.mu.Unlock()
		}
	case isDefenderCall(req.URL.Path):
		c := defenderCall{At: time.Now(), Alert: callAlert(req.URL.Path)}
		rec := &recordingWriter{ResponseWriter: w}
		defer func() {
			c.Status = rec.status
			if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err == nil {
				c.RetryAfter = time.Duration(s) * time.Second
			}
			r.mu.Lock()
			r.calls = append(r.calls, c)
			r.mu.Unlock()
		}()
		r.mu.Lock()
		throttle := r.throttle
		r.mu.Unlock()
		if throttle > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(int((throttle+time.Second-1)/time.Second)))
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(http.StatusTooManyRequests)
			_, _ = rec.Write([]byte(`{"error":{"code":"TooManyRequests","message":"API calls quota exceeded!"}}`))
			return
		}
		r.Emulator.ServeHTTP(rec, req)
	default:
		r.Emulator.ServeHTTP(w, req)
	}
}

// graphAlerts is the path of Microsoft Graph's alert calls, followed by
// the alert ID (DEFENDER_API=graph).
const graphAlerts = "/v1.0/security/alerts_v2/"

// isDefenderCall tells a Defender call of either API from Entra's paths.
func isDefenderCall(path string) bool {
	return strings.HasSuffix(path, "/domains") || strings.HasPrefix(path, graphAlerts)
}

// callAlert is the alert ID of a Defender call's path.
func callAlert(path string) string {
	if id, ok := strings.CutPrefix(path, graphAlerts); ok {
		return id
	}
	parts := strings.Split(path, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[len(parts)-2]
}

// SetThrottle answers every domains call 429 with Retry-After (whole
// seconds, rounded up) before the emulator sees it, until SetThrottle(0).
func (r *recordingEmulator) SetThrottle(retryAfter time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttle = retryAfter
}

// Tokens are the access tokens handed out so far.
func (r *recordingEmulator) Tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tokens)
}

// Recorded are the domains calls answered so far, in arrival order.
func (r *recordingEmulator) Recorded() []defenderCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.calls)
	slices.SortFunc(out, func(a, b defenderCall) int { return a.At.Compare(b.At) })
	return out
}

// recordingWriter notes the status of an answer and, with keep, its body.
type recordingWriter struct {
	http.ResponseWriter
	status int
	keep   bool
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.keep {
		w.body.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// maxInWindow is the largest number of times that fall in any half-open
// interval [t, t+window); times must be sorted.
func maxInWindow(times []time.Time, window time.Duration) (most int, at time.Time) {
	j := 0
	for i := range times {
		for times[i].Sub(times[j]) >= window {
			j++
		}
		if n := i - j + 1; n > most {
			most, at = n, times[j]
		}
	}
	return most, at
}

// resultCount is the number of messages in the result stream.
func resultCount(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	st, err := js.Stream(t.Context(), resultStream)
	if err != nil {
		return -1
	}
	info, err := st.Info(t.Context())
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// waitResultCount waits until the result stream holds at least n messages.
func waitResultCount(t *testing.T, js jetstream.JetStream, n int, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 10*time.Millisecond, func() bool { return resultCount(t, js) >= n }, "%d results", n)
}

// alertIDs returns n distinct alert IDs: prefix_000, prefix_001, …
func alertIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s_%03d", prefix, i)
	}
	return ids
}

// publishAll stores the bodies as requests, in order, with asynchronous
// publishes, and returns their stream sequences.
func publishAll(t *testing.T, js jetstream.JetStream, bodies []string) []uint64 {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, len(bodies))
	for i, b := range bodies {
		f, err := js.PublishAsync(requestSubject, []byte(b))
		if err != nil {
			t.Fatalf("publish %q: %v", b, err)
		}
		futures[i] = f
	}
	seqs := make([]uint64, len(bodies))
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			t.Fatalf("publish %q: %v", bodies[i], err)
		case <-timeout.C:
			t.Fatalf("publish: no acknowledgement within 30s")
		}
	}
	return seqs
}

// checkAllSucceeded checks that each request of seqs has a success result
// for its alert with exactly the domains of want.
func checkAllSucceeded(t *testing.T, got map[uint64]storedResult, seqs []uint64, alerts []string, want map[string][]string) {
	t.Helper()
	bad := 0
	for i, seq := range seqs {
		r, ok := got[seq]
		switch {
		case !ok:
			t.Errorf("request %d (%s): no result", seq, alerts[i])
		case r.Status != "success" || r.Subject != successSubject || r.AlertID != alerts[i] ||
			!slices.Equal(r.Domains, want[alerts[i]]):
			t.Errorf("request %d: %s, want success for %s with %v", seq, r.Raw, alerts[i], want[alerts[i]])
		default:
			continue
		}
		if bad++; bad >= 10 {
			t.Fatalf("more bad results; by kind: %s", kinds(got))
		}
	}
}

// outputOf is the captured output of processes, for searching.
func outputOf(ps ...*testenv.Process) string {
	var b strings.Builder
	for i, p := range ps {
		fmt.Fprintf(&b, "--- process %d ---\n%s", i, p.Output())
	}
	return b.String()
}
