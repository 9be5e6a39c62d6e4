package connector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/trace"

	"github.com/alert-domains/alert-domains/message"
)

// refreshMargin is how long before its expiry a token is replaced.
const refreshMargin = 5 * time.Minute

// forcedRefreshInterval is how long a token fetched to replace a rejected
// one is not replaced in turn, so refused tenants do not flood Entra ID.
const forcedRefreshInterval = 30 * time.Second

// tokenSource caches the token of one scope; one caller at a time fetches anew.
type tokenSource struct {
	cred      azcore.TokenCredential
	opts      policy.TokenRequestOptions
	userAgent string
	tracer    trace.Tracer // a span for each token fetched

	fetch chan struct{} // held by the caller fetching a token
	cur   atomic.Pointer[bearer]
}

type bearer struct {
	token     string
	refreshAt time.Time
	forcedAt  time.Time // when fetched because the one before was rejected; zero otherwise
	header    http.Header
}

func newTokenSource(cred azcore.TokenCredential, scope, userAgent string, tracer trace.Tracer) *tokenSource {
	return &tokenSource{
		cred:      cred,
		opts:      policy.TokenRequestOptions{Scopes: []string{scope}},
		userAgent: userAgent,
		tracer:    tracer,
		fetch:     make(chan struct{}, 1),
	}
}

// get returns a valid token other than rejected, one Defender refused.
func (s *tokenSource) get(ctx context.Context, rejected string) (*bearer, error) {
	if b := s.cached(rejected); b != nil {
		return b, nil
	}
	select {
	case s.fetch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.fetch }()
	if b := s.cached(rejected); b != nil {
		return b, nil
	}
	ctx, span := s.tracer.Start(ctx, "entra token", trace.WithSpanKind(trace.SpanKindClient))
	b, err := s.fetchToken(ctx, rejected)
	endToken(ctx, span, err)
	return b, err
}

// fetchToken asks the credential for a token, fresh when rejected is the current one.
func (s *tokenSource) fetchToken(ctx context.Context, rejected string) (*bearer, error) {
	opts := s.opts
	now := time.Now()
	var forcedAt time.Time
	if cur := s.cur.Load(); rejected != "" && cur != nil && cur.token == rejected {
		// A CAE claims challenge: azidentity skips its cache for claims.
		opts.Claims = `{"access_token":{"nbf":{"essential":true,"value":"` + strconv.FormatInt(now.Unix(), 10) + `"}}}`
		forcedAt = now
	}
	tok, err := s.cred.GetToken(ctx, opts)
	if err != nil {
		return nil, err
	}
	if tok.Token == "" {
		return nil, errors.New("the credential returned an empty token")
	}
	b := &bearer{
		token:     tok.Token,
		refreshAt: refreshTime(now, tok),
		forcedAt:  forcedAt,
		header: http.Header{
			"Accept":        {"application/json"},
			"User-Agent":    {s.userAgent},
			"Authorization": {"Bearer " + tok.Token},
		},
	}
	s.cur.Store(b)
	return b, nil
}

// replaceable reports whether a rejected token may be replaced.
func (s *tokenSource) replaceable(rejected string) bool {
	b := s.cur.Load()
	return b == nil || b.token != rejected || b.forcedAt.IsZero() || time.Since(b.forcedAt) >= forcedRefreshInterval
}

func (s *tokenSource) cached(rejected string) *bearer {
	b := s.cur.Load()
	if b == nil || !time.Now().Before(b.refreshAt) || (rejected != "" && b.token == rejected) {
		return nil
	}
	return b
}

// refreshTime is when a token fetched at now is replaced.
func refreshTime(now time.Time, tok azcore.AccessToken) time.Time {
	life := tok.ExpiresOn.Sub(now)
	at := tok.ExpiresOn.Add(-refreshMargin)
	if life < 2*refreshMargin {
		at = now.Add(life / 2)
	}
	if !tok.RefreshOn.IsZero() && tok.RefreshOn.After(now) && tok.RefreshOn.Before(at) {
		at = tok.RefreshOn
	}
	return at
}

// tokenError classifies a failure to get a token.
func tokenError(ctx, attempt context.Context, err error) *Error {
	if ctx.Err() != nil {
		return canceled(ctx)
	}
	if attempt.Err() != nil {
		return &Error{Kind: message.KindUnavailable, Message: "no access token in time", Err: attempt.Err()}
	}
	ce := newCredentialError(err)
	switch {
	case ce.problem != "":
		return &Error{Kind: message.KindUnavailable, Message: "entra id unreachable: " + ce.problem, Err: ce, final: true}
	case ce.authFailed && ce.status == 0:
		return &Error{Kind: message.KindUnavailable, Message: "entra id unreachable", Err: ce}
	case ce.status == http.StatusTooManyRequests || ce.status >= 500:
		return &Error{Kind: message.KindUnavailable, Message: "entra id unavailable", Err: ce}
	}
	return &Error{Kind: message.KindUnauthorized, Message: "no access token", Err: ce}
}

func canceled(ctx context.Context) *Error {
	return &Error{Kind: message.KindUnavailable, Message: "lookup canceled", Err: ctx.Err()}
}

// Permission is what an access token says of the permission an API needs.
type Permission int

const (
	PermissionUnknown Permission = iota // not a JWT, or no roles claim
	PermissionGranted                   // the roles claim holds the permission
	PermissionMissing                   // the roles claim lacks it
)

// CheckPermission reads the roles claim of the client's token: an unverified hint.
func (c *Client) CheckPermission(ctx context.Context) (Permission, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	b, err := c.tokens.get(actx, "")
	if err != nil {
		return PermissionUnknown, tokenError(ctx, actx, err)
	}
	roles, ok := tokenRoles(b.token)
	if !ok {
		return PermissionUnknown, nil
	}
	if slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(c.api.grants(), r) }) {
		return PermissionGranted, nil
	}
	return PermissionMissing, nil
}

// grants are the permissions that allow the API's call, least privileged first.
func (a API) grants() []string {
	if a == MDE {
		return []string{"URL.Read.All"}
	}
	return []string{"SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"}
}

// tokenRoles reads the roles claim of a JWT without verifying it.
func tokenRoles(token string) (roles []string, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 64<<10 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	var claims struct {
		Roles *[]string `json:"roles"`
	}
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Roles == nil {
		return nil, false
	}
	return *claims.Roles, true
}
