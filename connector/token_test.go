package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/alert-domains/alert-domains/message"
)

func TestRefreshTime(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  azcore.AccessToken
		want time.Time
	}{
		{"an hour", azcore.AccessToken{ExpiresOn: now.Add(3599 * time.Second)}, now.Add(3599*time.Second - 5*time.Minute)},
		{"ten minutes", azcore.AccessToken{ExpiresOn: now.Add(10 * time.Minute)}, now.Add(5 * time.Minute)},
		{"four minutes", azcore.AccessToken{ExpiresOn: now.Add(4 * time.Minute)}, now.Add(2 * time.Minute)},
		{"refresh suggested", azcore.AccessToken{ExpiresOn: now.Add(24 * time.Hour), RefreshOn: now.Add(12 * time.Hour)}, now.Add(12 * time.Hour)},
		{"late suggestion ignored", azcore.AccessToken{ExpiresOn: now.Add(time.Hour), RefreshOn: now.Add(59 * time.Minute)}, now.Add(55 * time.Minute)},
	}
	for _, tt := range tests {
		if got := refreshTime(now, tt.tok); !got.Equal(tt.want) {
			t.Errorf("%s: refreshTime = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// countingCredential issues a new token per call, living for life.
type countingCredential struct {
	calls  atomic.Int32
	claims atomic.Int32 // calls with claims
	life   time.Duration
	err    error
}

func (c *countingCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := c.calls.Add(1)
	if o.Claims != "" {
		c.claims.Add(1)
	}
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: fmt.Sprintf("token-%d", n), ExpiresOn: time.Now().Add(c.life)}, nil
}

func TestTokenSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &countingCredential{life: time.Hour}
		s := newTokenSource(cred, "scope/.default", "ua/1", noop.Tracer{})
		var wg sync.WaitGroup
		errs := make(chan error, 110)
		for range 100 {
			wg.Go(func() {
				if _, err := s.get(t.Context(), ""); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		if n := cred.calls.Load(); n != 1 {
			t.Fatalf("%d token requests for 100 callers, want 1", n)
		}
		b, _ := s.get(t.Context(), "")
		if got := b.header.Get("Authorization"); got != "Bearer token-1" || b.header.Get("User-Agent") != "ua/1" || b.header.Get("Accept") != "application/json" {
			t.Errorf("header = %v", b.header)
		}

		// A rejected token is asked for again, once for all who saw it.
		for range 10 {
			wg.Go(func() {
				if b, err := s.get(t.Context(), "token-1"); err != nil || b.token != "token-2" {
					errs <- fmt.Errorf("get = %v, %v; want token-2", b, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n, m := cred.calls.Load(), cred.claims.Load(); n != 2 || m != 1 {
			t.Fatalf("%d token requests after a rejection, %d with claims; want 2 and 1", n, m)
		}
		// A forced token rejected in turn is not replaced for 30s.
		if s.replaceable("token-2") {
			t.Error("a token forced a moment ago is replaceable")
		}
		if !s.replaceable("token-1") {
			t.Error("a token already replaced is not replaceable")
		}
		time.Sleep(forcedRefreshInterval)
		if !s.replaceable("token-2") {
			t.Error("a forced token is still not replaceable 30s later")
		}

		// Refreshed 5 minutes before it expires.
		time.Sleep(54*time.Minute - forcedRefreshInterval)
		if b, _ := s.get(t.Context(), ""); b.token != "token-2" {
			t.Errorf("token %s replaced too early", b.token)
		}
		time.Sleep(2 * time.Minute)
		if b, _ := s.get(t.Context(), ""); b.token != "token-3" {
			t.Errorf("token %s not replaced 4 minutes before expiry", b.token)
		}
	})
}

func TestTokenErrors(t *testing.T) {
	canceledCtx, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	refused := &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 401}}
	down := &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 503}}
	unreachable := &azidentity.AuthenticationFailedError{}
	bg := context.Background()
	tests := []struct {
		name     string
		ctx, att context.Context
		err      error
		kind     message.Kind
	}{
		{"caller canceled", canceledCtx, canceledCtx, refused, message.KindUnavailable},
		{"attempt timed out", bg, expired, errors.New("x"), message.KindUnavailable},
		{"entra refused", bg, bg, refused, message.KindUnauthorized},
		{"entra down", bg, bg, down, message.KindUnavailable},
		{"entra unreachable", bg, bg, unreachable, message.KindUnavailable},
		{"no credential", bg, bg, errors.New("managed identity unavailable"), message.KindUnauthorized},
	}
	for _, tt := range tests {
		if e := tokenError(tt.ctx, tt.att, tt.err); e.Kind != tt.kind || e.HTTPStatus != 0 {
			t.Errorf("%s: tokenError = %+v, want kind %s", tt.name, e, tt.kind)
		}
	}
	if e := tokenError(canceledCtx, canceledCtx, refused); !errors.Is(e, context.Canceled) {
		t.Error("a canceled call does not wrap context.Canceled")
	}
}
