package connector_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// newServer starts an emulator that is closed when the test ends.
func newServer(t testing.TB, opts ...emulator.Option) *emulator.Server {
	t.Helper()
	srv := emulator.NewServer(opts...)
	t.Cleanup(srv.Close)
	return srv
}

// newClient is a client of srv signed in with its client secret, with
// short backoff intervals; opts come last and win.
func newClient(t testing.TB, srv *emulator.Server, opts ...connector.Option) *connector.Client {
	t.Helper()
	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		t.Fatal(err)
	}
	return newClientWith(t, srv, cred, emulator.Scope, opts...)
}

func newClientWith(t testing.TB, srv *emulator.Server, cred azcore.TokenCredential, scope string, opts ...connector.Option) *connector.Client {
	t.Helper()
	base := []connector.Option{
		connector.WithHTTPClient(srv.Client()),
		connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, time.Second),
		connector.WithTimeout(5 * time.Second),
	}
	c, err := connector.New(srv.URL, cred, scope, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// staticCredential hands out one fixed token.
type staticCredential struct{ token string }

func (c staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	status []int
	waits  []time.Duration
	calls  chan int // every DefenderCall status, when not nil
}

func (r *recorder) DefenderCall(status int, d time.Duration) {
	r.mu.Lock()
	r.status = append(r.status, status)
	r.mu.Unlock()
	if r.calls != nil {
		r.calls <- status
	}
}

func (r *recorder) QuotaWait(d time.Duration) {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
}

func (r *recorder) statuses() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.status...)
}

func (r *recorder) quotaWaits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

// jsonError is a Defender error body.
func jsonError(code string) string {
	return `{"error":{"code":"` + code + `","message":"scripted","target":"00000000-0000-4000-8000-000000000000"}}`
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// asError returns err as an *connector.Error or fails the test.
func asError(t *testing.T, err error) *connector.Error {
	t.Helper()
	e, ok := err.(*connector.Error)
	if !ok {
		t.Fatalf("error %T %v, want *connector.Error", err, err)
	}
	return e
}
