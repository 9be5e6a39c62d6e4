// Package connector asks Microsoft Graph (or the retiring Defender for
// Endpoint API) for the domains of an alert and judges the answer; it never logs.
package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"golang.org/x/sync/semaphore"

	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/internal/wait"
	"github.com/alert-domains/alert-domains/message"
)

// Version names the build in the User-Agent (set with -ldflags -X).
var Version = "dev"

// Defaults of a Client.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxBodyBytes   = 4 << 20
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 60 * time.Second
	DefaultBackoffElapsed = 10 * time.Minute
	DefaultBodyBudget     = 32 << 20
)

const (
	maxPages               = 10       // pages of one answer read at most
	errorBodyLimit         = 64 << 10 // bytes read of an error answer
	pooledBufferLimit      = 64 << 10 // larger read buffers are not kept
	drainLimit             = 16 << 10 // bytes drained to keep a connection
	backoffRandomization   = 0.5
	defaultMaxIdlePerHost  = 64
	defaultMaxIdle         = 256
	defaultIdleConnTimeout = 90 * time.Second
)

// Observer is told about each HTTP call to Defender and each quota wait.
type Observer interface {
	DefenderCall(status int, d time.Duration) // status 0: no HTTP answer came
	QuotaWait(d time.Duration)                // only with a quota; 0 when it did not wait
}

// Result is the answer of a lookup.
type Result struct {
	Domains      []string // hosts in the answer's order, without duplicates; [] when none
	Attempts     int      // HTTP calls made, also when the lookup failed
	GraphAlertID string   // the ID Graph answered for, when not the one asked
}

// Client looks up the domains of alerts.
type Client struct {
	api    API
	wire   wire
	base   *url.URL // without a trailing slash
	hc     *http.Client
	tokens *tokenSource
	quota  Quota

	timeout                                    time.Duration
	backoffInitial, backoffMax, backoffElapsed time.Duration
	observer                                   Observer
	maxBody, bodyBudget                        int64
	bodies                                     *semaphore.Weighted // bodyBudget bytes
	insecureHTTP                               bool

	bufs sync.Pool // *[]byte

	tracer     trace.Tracer
	spanName   string                  // of an HTTP attempt: the method and the API's URL template
	clientKind []trace.SpanStartOption // made once: options per call allocate
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient sends requests with hc's transport; redirects are never followed.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return fmt.Errorf("%w: nil http client", ErrConfig)
		}
		c.hc = hc
		return nil
	}
}

// WithTimeout bounds each HTTP attempt, token and body included (DEFENDER_TIMEOUT).
func WithTimeout(d time.Duration) Option {
	return positive("timeout", d, func(c *Client) { c.timeout = d })
}

// positive is an option that sets a value that must be more than 0.
func positive[T int64 | time.Duration](what string, v T, set func(*Client)) Option {
	return func(c *Client) error {
		if v <= 0 {
			return fmt.Errorf("%w: %s must be more than 0", ErrConfig, what)
		}
		set(c)
		return nil
	}
}

// Quota is what every HTTP attempt waits for: a *Limiter, or a quota.Shared.
type Quota interface {
	// Acquire blocks until a call may start; release is called once it ended.
	Acquire(ctx context.Context) (release func(), waited time.Duration, err error)
	Cooldown(retryAfter time.Duration) // a 429's Retry-After: no call before then
}

// WithQuota makes every HTTP attempt wait for a slot of q and tells q of 429s.
func WithQuota(q Quota) Option {
	return func(c *Client) error { c.quota = q; return nil }
}

// WithBackoff sets the jittered backoff between attempts and when retries stop.
func WithBackoff(initial, max, maxElapsed time.Duration) Option {
	return func(c *Client) error {
		if initial <= 0 || max < initial || maxElapsed <= 0 {
			return fmt.Errorf("%w: backoff needs 0 < initial <= max and a positive max elapsed time", ErrConfig)
		}
		c.backoffInitial, c.backoffMax, c.backoffElapsed = initial, max, maxElapsed
		return nil
	}
}

// WithObserver reports calls and quota waits to o.
func WithObserver(o Observer) Option {
	return func(c *Client) error { c.observer = o; return nil }
}

// New returns a client of api at an https baseURL. Errors wrap ErrConfig.
func New(api API, baseURL string, cred azcore.TokenCredential, scope string, opts ...Option) (*Client, error) {
	if _, err := ParseAPI(string(api)); err != nil {
		return nil, err
	}
	c := &Client{
		api:            api,
		wire:           api.wire(),
		timeout:        DefaultTimeout,
		backoffInitial: DefaultBackoffInitial,
		backoffMax:     DefaultBackoffMax,
		backoffElapsed: DefaultBackoffElapsed,
		maxBody:        DefaultMaxBodyBytes,
		bodyBudget:     DefaultBodyBudget,
		tracer:         noop.Tracer{},
		spanName:       http.MethodGet + " " + api.wire().template(),
		clientKind:     []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)},
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	if cred == nil {
		return nil, fmt.Errorf("%w: nil credential", ErrConfig)
	}
	if strings.TrimSpace(scope) == "" {
		return nil, fmt.Errorf("%w: empty scope", ErrConfig)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: the api url is not a URL (the value is not shown)", ErrConfig)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !c.insecureHTTP) {
		return nil, fmt.Errorf("%w: the api url must be https (the value is not shown)", ErrConfig)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: the api url must be a plain scheme://host[/path] (the value is not shown)", ErrConfig)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	c.base = u
	if c.hc == nil {
		c.hc = NewHTTPClient(defaultMaxIdlePerHost)
	}
	hc := *c.hc
	hc.CheckRedirect = noRedirect // never follow a redirect: the token must not go elsewhere
	c.hc = &hc
	c.tokens = newTokenSource(cred, scope, "alert-domains/"+Version, c.tracer)
	c.bodyBudget = max(c.bodyBudget, c.maxBody+1)
	c.bodies = semaphore.NewWeighted(c.bodyBudget)
	c.bufs.New = func() any { b := make([]byte, 0, 4<<10); return &b }
	return c, nil
}

// NewHTTPClient is a keep-alive client that follows no redirect; idlePerHost: one per worker.
func NewHTTPClient(idlePerHost int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(idlePerHost, defaultMaxIdlePerHost)
	t.MaxIdleConns = max(2*idlePerHost, defaultMaxIdle)
	t.IdleConnTimeout = defaultIdleConnTimeout
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t, CheckRedirect: noRedirect}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// API is the API the client asks.
func (c *Client) API() API { return c.api }

// Limiter is the client's per-process quota, or nil.
func (c *Client) Limiter() *Limiter { l, _ := c.quota.(*Limiter); return l }

// Quota is the quota the client waits for, or nil.
func (c *Client) Quota() Quota { return c.quota }

// CloseIdleConnections closes the HTTP client's idle connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Domains returns the domains the API relates to the alert. The error is
// always an *Error; when ctx ends it is unavailable and wraps ctx.Err().
func (c *Client) Domains(ctx context.Context, alertID string) (Result, error) {
	if err := message.ValidateAlertID(alertID); err != nil {
		return Result{}, &Error{Kind: message.KindInvalidRequest, Message: err.Error()}
	}
	var hosts hostSet
	var res Result
	err := c.lookup(ctx, alertID, &hosts, &res.Attempts)
	if err != nil && err.HTTPStatus == http.StatusNotFound {
		if second, ok := c.wire.retryAs(alertID); ok {
			if err = c.lookup(ctx, second, &hosts, &res.Attempts); err == nil {
				res.GraphAlertID = second
			}
		}
	}
	res.Domains = hosts.result()
	if err != nil {
		return res, err
	}
	return res, nil
}

// lookup asks for one form of an alert ID, adding to hosts and attempts: the
// retry loop every API shares.
func (c *Client) lookup(ctx context.Context, alertID string, hosts *hostSet, attempts *int) *Error {
	target := c.base.String() + c.wire.path(alertID)
	var (
		retry     retrier
		refreshed bool     // a 401 was retried with a fresh token
		rejected  string   // the token of that 401
		resends   int      // the calls for target so far
		visited   []string // the pages read
		budget    = c.maxBody
	)
	for {
		p, used, n, called, err := c.attempt(ctx, target, rejected, resends, budget, hosts)
		rejected = ""
		if called {
			*attempts++
			resends++
		}
		if err == nil {
			budget -= n
			resends = 0
			if p.next == "" {
				return nil
			}
			visited = append(visited, target)
			if target, err = c.nextPage(p, visited); err != nil {
				return err
			}
			continue
		}
		if ctx.Err() != nil {
			return canceled(ctx)
		}
		if err.HTTPStatus == http.StatusUnauthorized && !refreshed && c.tokens.replaceable(used) {
			refreshed, rejected = true, used
			continue
		}
		if !err.Kind.Retryable() || err.final {
			return err
		}
		wait, ok := retry.next(c, err)
		if !ok {
			return err
		}
		if !retrySleep(ctx, wait) {
			return canceled(ctx)
		}
	}
}

// answer is one 2xx answer read into a lookup's hosts.
type answer struct {
	next   string // the next page's link
	status int    // the HTTP status, for errors about what follows it
}

// attempt makes one HTTP call; used is the token sent, n the bytes read.
func (c *Client) attempt(ctx context.Context, target, rejected string, resends int, budget int64, hosts *hostSet) (p answer, used string, n int64, called bool, err *Error) {
	if ctx.Err() != nil {
		return p, "", 0, false, canceled(ctx)
	}
	release, qerr := c.acquire(ctx)
	if qerr != nil {
		return p, "", 0, false, qerr
	}
	defer release()
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	b, terr := c.tokens.get(actx, rejected)
	if terr != nil {
		return p, "", 0, false, tokenError(ctx, actx, terr)
	}
	hctx, span := c.startCall(actx, target, resends)
	req, rerr := http.NewRequestWithContext(hctx, http.MethodGet, target, nil)
	if rerr != nil {
		err = &Error{Kind: message.KindBadRequest, Message: "cannot build the request", Err: rerr}
		endCall(span, 0, err)
		return p, b.token, 0, false, err
	}
	if c.hc.Jar == nil { // no cookie jar to add to it: requests may share the token's header
		req.Header = b.header
	} else {
		req.Header = b.header.Clone()
	}

	start := time.Now()
	resp, herr := c.hc.Do(req)
	if herr != nil {
		c.observe(0, start)
		err = transportError(ctx, actx, herr)
		endCall(span, 0, err)
		return p, b.token, 0, true, err
	}
	p, n, err = c.answerOf(ctx, actx, resp, start, budget, hosts)
	endCall(span, resp.StatusCode, err)
	return p, b.token, n, true, err
}

// answerOf reads and classifies one answer of at most budget bytes.
func (c *Client) answerOf(ctx, actx context.Context, resp *http.Response, start time.Time, budget int64, hosts *hostSet) (answer, int64, *Error) {
	limit := budget
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if !ok {
		limit = min(limit, errorBodyLimit)
	}
	tooLarge := func() *Error {
		return &Error{Kind: message.KindBadResponse, HTTPStatus: resp.StatusCode, Message: fmt.Sprintf("answer is larger than %d bytes", c.maxBody)}
	}
	if ok && resp.ContentLength > limit {
		closeBody(resp.Body, false)
		c.observe(resp.StatusCode, start)
		return answer{}, 0, tooLarge()
	}
	bufp := c.bufs.Get().(*[]byte)
	defer c.putBuffer(bufp)
	body, release, atEOF, berr := c.readBody(actx, resp.Body, limit, resp.ContentLength, bufp)
	defer release()
	closeBody(resp.Body, atEOF)
	c.observe(resp.StatusCode, start)

	if berr == nil && actx.Err() != nil {
		// The attempt ended during the read: the body may be cut short.
		berr = actx.Err()
	}
	if berr != nil {
		return answer{}, 0, transportError(ctx, actx, berr)
	}
	if e := classify(c.api, resp.StatusCode, resp.Header, body); e != nil {
		if e.HTTPStatus == http.StatusTooManyRequests && e.RetryAfter > 0 && c.quota != nil {
			c.quota.Cooldown(e.RetryAfter)
		}
		return answer{}, 0, e
	}
	if int64(len(body)) > limit {
		return answer{}, 0, tooLarge()
	}
	next, e := c.wire.read(body, hosts)
	if e != nil {
		e.HTTPStatus = resp.StatusCode
		return answer{}, 0, e
	}
	return answer{next: next, status: resp.StatusCode}, int64(len(body)), nil
}

func (c *Client) observe(status int, start time.Time) {
	if c.observer != nil {
		c.observer.DefenderCall(status, time.Since(start))
	}
}

func (c *Client) putBuffer(bufp *[]byte) {
	if cap(*bufp) > pooledBufferLimit {
		return
	}
	*bufp = (*bufp)[:0]
	c.bufs.Put(bufp)
}

// readBody reads r to its end or past limit, reserving big bodies from the budget.
func (c *Client) readBody(ctx context.Context, r io.Reader, limit, length int64, bufp *[]byte) (body []byte, release func(), atEOF bool, err error) {
	release = func() {}
	small := min(limit+1, pooledBufferLimit)
	body, atEOF, err = fill(r, (*bufp)[:0], small)
	*bufp = body[:0]
	if atEOF || err != nil || int64(len(body)) > limit {
		return body, release, atEOF, err
	}
	need := limit + 1
	if length >= 0 {
		need = min(need, length+1)
	}
	need = max(need, int64(len(body))+1)
	if werr := c.bodies.Acquire(ctx, need); werr != nil {
		return body, release, false, werr
	}
	release = func() { c.bodies.Release(need) }
	big := make([]byte, len(body), need)
	copy(big, body)
	body, atEOF, err = fill(r, big, need)
	return body, release, atEOF, err
}

// fill reads r into buf, growing it, until EOF (atEOF) or most bytes.
func fill(r io.Reader, buf []byte, most int64) (body []byte, atEOF bool, err error) {
	for int64(len(buf)) < most {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := min(int64(cap(buf)), most)
		n, rerr := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		switch {
		case rerr == io.EOF:
			return buf, true, nil
		case rerr != nil:
			return buf, false, rerr
		}
	}
	return buf, false, nil
}

// closeBody closes a body after draining a little, to keep the connection.
func closeBody(body io.ReadCloser, atEOF bool) {
	if !atEOF {
		_, _ = io.CopyN(io.Discard, body, drainLimit)
	}
	_ = body.Close()
}

func transportError(ctx, attempt context.Context, err error) *Error {
	if ctx.Err() != nil {
		return canceled(ctx)
	}
	if attempt.Err() != nil {
		return &Error{Kind: message.KindUnavailable, Message: "defender did not answer in time", Err: attempt.Err()}
	}
	if problem := permanentProblem(err); problem != "" {
		return &Error{Kind: message.KindUnavailable, Message: "defender unreachable: " + problem, Err: err, final: true}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return &Error{Kind: message.KindUnavailable, Message: "defender did not answer in time", Err: err}
	}
	return &Error{Kind: message.KindUnavailable, Message: "defender unreachable", Err: err}
}

// nextPage is the page p links to: within maxPages, not one already read,
// and on the API's scheme and host.
func (c *Client) nextPage(p answer, visited []string) (string, *Error) {
	u, err := url.Parse(p.next)
	if err == nil && !u.IsAbs() {
		u = c.base.ResolveReference(u)
	}
	var e *Error
	switch {
	case len(visited) >= maxPages:
		e = badResponse(fmt.Sprintf("answer has more than %d pages", maxPages), nil)
	case err != nil:
		e = badResponse("answer has a next link that is not a URL", nil)
	case u.Scheme != c.base.Scheme || !strings.EqualFold(u.Host, c.base.Host) || u.User != nil:
		e = badResponse("answer has a next link to another host", nil)
	default:
		if next := u.String(); !slices.Contains(visited, next) {
			return next, nil
		}
		e = badResponse("answer has a next link to a page already read", nil)
	}
	e.HTTPStatus = p.status
	return "", e
}

// retrier is the backoff of one lookup, made at its first retryable failure.
type retrier struct{ exp *backoff.ExponentialBackOff }

// next is the backoff or a longer Retry-After; false once the budget is spent.
func (r *retrier) next(c *Client, err *Error) (wait time.Duration, ok bool) {
	if r.exp == nil {
		r.exp = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(c.backoffInitial),
			backoff.WithMaxInterval(c.backoffMax),
			backoff.WithMaxElapsedTime(c.backoffElapsed),
			backoff.WithRandomizationFactor(backoffRandomization),
		)
	}
	wait = r.exp.NextBackOff()
	if wait == backoff.Stop {
		return 0, false
	}
	if err.RetryAfter > wait {
		if r.exp.GetElapsedTime()+err.RetryAfter > c.backoffElapsed {
			return 0, false
		}
		wait = err.RetryAfter
	}
	return wait, true
}

// retrySleep waits d unless ctx ends; from 100ms on it gives up the worker.
func retrySleep(ctx context.Context, d time.Duration) bool {
	if d >= 100*time.Millisecond {
		defer wait.Begin(ctx, false)()
	}
	return timing.Sleep(ctx, d, nil)
}
