// Package handlers turns one delivery of a request message into exactly one
// stored result: it decodes the request, looks up the alert's domains, builds
// the success or failure result, publishes it with a message ID that is the
// same for every delivery, and decides what happens to the request message.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
)

// Delivery is one delivery of a request message.
type Delivery struct {
	// Subject is the subject the request was published to: its last
	// token names the tenant when it is <REQUEST_SUBJECT>.<name>.
	Subject   string
	Data      []byte
	Header    nats.Header
	Stream    string
	StreamSeq uint64
	// Stored is when the stream stored the message: with Stream and
	// StreamSeq it names the message across re-creations of the stream.
	Stored       time.Time
	NumDelivered uint64
	MaxDeliver   int // 0 or less: no limit
}

// Last reports whether this is the last delivery the consumer allows: its
// outcome must be a stored result whatever happens.
func (d *Delivery) Last() bool {
	return d.MaxDeliver > 0 && d.NumDelivered >= uint64(d.MaxDeliver)
}

// Action is what the consumer does with the request message.
type Action int

// The actions on a request message.
const (
	// Ack: the result is stored; the request is done.
	Ack Action = iota + 1
	// Retry: no result could be stored; redeliver after Outcome.Delay.
	Retry
	// Terminate: the request can never succeed (invalid input) and its
	// failure result is stored; never redeliver.
	Terminate
	// HandBack: the process is shutting down; redeliver at once, to any replica.
	HandBack
)

func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case Terminate:
		return "terminate"
	case HandBack:
		return "hand_back"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Outcome is what handling a delivery came to.
type Outcome struct {
	Action Action
	Delay  time.Duration // with Retry
	// Result is the result that was published, or would have been when the
	// publish failed; nil when the delivery was handed back.
	Result *Result
	// Stored reports that the result stream holds the result; Duplicate that
	// it held it already (from an earlier delivery): this copy was dropped,
	// or not published at all because the request's record named the
	// stored result, which is then Result.
	Stored, Duplicate bool
	// Err is the reason for a failure result, a failed publish, or a hand-back.
	Err error
	// CacheErr is a cache read or write that failed; the result stands.
	CacheErr error
	// RecordErr is a read or write of the request's record (see Answers)
	// that failed; the result stands.
	RecordErr error
	AlertID   string
	Attempts  int
}

// Handler handles one delivery. It never panics on bad input.
type Handler func(ctx context.Context, d *Delivery) Outcome

// Middleware wraps a handler with a cross-cutting concern.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Lookup asks Defender for the domains of an alert (a *connector.Client).
type Lookup interface {
	Domains(ctx context.Context, alertID string) (connector.Result, error)
}

// Tenants is the set of tenants a service serves: it finds the tenant a
// request names and asks that tenant's Defender, with the tenant's own
// credential and quota.
type Tenants interface {
	// Resolve returns the tenant of a request from the tenant token of its
	// subject, its "tenant" field and its alert's Entra tenant ID (each may
	// be empty). named reports whether the request named it (its results
	// then go to the tenant's own subjects). Errors are *connector.Error of
	// kind unknown_tenant, or invalid_request when two names disagree.
	Resolve(subjectTenant, bodyTenant, entraTenantID string) (tenant string, named bool, err error)
	// Domains asks the Defender of tenant for the domains of an alert.
	Domains(ctx context.Context, tenant, alertID string) (connector.Result, error)
}

// Publisher stores a message in a stream and returns the stream's
// acknowledgement (a jetstream.JetStream).
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Cache keeps success results for a while, so that a repeated request costs
// no Defender call.
type Cache interface {
	Get(ctx context.Context, alertID string) (domains []string, ok bool, err error)
	Put(ctx context.Context, alertID string, domains []string) error
}

// Service is the request handler of the service.
type Service struct {
	lookup         Lookup
	tenants        Tenants
	requestSubject string
	// plainTenant is the tenant whose cache keys are the bare alert ID (the
	// one tenant formed by the environment, whose entries predate tenants).
	plainTenant    string
	pub            Publisher
	successSubject string
	failureSubject string
	cache          Cache
	answers        Answers
	recordAnswers  bool // write a record of each stored result (WithAnswers)
	now            func() time.Time
	publishTimeout time.Duration
	publishBudget  time.Duration
	maxResult      int
	retryDelay     func(delivery uint64) time.Duration
	// flights makes concurrent requests for the same alert share one
	// Defender call: a SIEM that sends an alert again on every update then
	// costs one call, not one per copy in flight. The call runs on the
	// goroutine of the first request (singleflight.DoChan would start a
	// goroutine per call, whose stack grows again through the whole HTTP
	// path every time).
	flightsMu sync.Mutex
	flights   map[string]*flight
}

// flight is a Defender call in progress, shared by the requests for its
// alert.
type flight struct {
	done chan struct{} // closed when res and err are set
	res  connector.Result
	err  error
}

// Option configures a Service.
type Option func(*Service) error

// WithCache answers repeated requests from c.
func WithCache(c Cache) Option {
	return func(s *Service) error {
		s.cache = c
		return nil
	}
}

// WithAnswers keeps a record of each stored result in a, read on every
// redelivery: a request whose result is stored is then acknowledged with
// that result, without a Defender call, however long after the first
// delivery it comes back.
func WithAnswers(a Answers) Option {
	return func(s *Service) error {
		if a == nil {
			return errors.New("handlers: nil answers")
		}
		s.answers, s.recordAnswers = a, true
		return nil
	}
}

// WithAnswerLookups reads the records in a on every redelivery, as
// WithAnswers does, but writes none. It serves a service whose deliveries
// acknowledge at once after their result is stored (no hook runs between
// the two), where a record would close no gap that the duplicate window
// leaves open: a crash between storing a result and writing its record is
// as likely as one between storing it and acknowledging the request, and
// a record costs one more replicated write per request.
func WithAnswerLookups(a Answers) Option {
	return func(s *Service) error {
		if a == nil {
			return errors.New("handlers: nil answers")
		}
		s.answers, s.recordAnswers = a, false
		return nil
	}
}

// WithTenants serves the tenants in t: each request is looked up with its
// tenant's Defender (the lookup given to New is not used), its result
// carries the tenant, and goes to <subject>.<tenant> when the request named
// it. A request names its tenant by the subject
// <requestSubject>.<tenant>, or in its body. Cache entries and shared calls
// are per tenant: the cache key is <tenant>.<alert ID>, except for
// plainTenant ("" for none), whose keys are the alert ID alone.
func WithTenants(t Tenants, requestSubject, plainTenant string) Option {
	return func(s *Service) error {
		if t == nil || requestSubject == "" {
			return errors.New("handlers: tenants need the tenant set and the request subject")
		}
		s.tenants, s.requestSubject, s.plainTenant = t, requestSubject, plainTenant
		return nil
	}
}

// WithClock sets the clock that stamps completedAt.
func WithClock(now func() time.Time) Option {
	return func(s *Service) error {
		if now == nil {
			return errors.New("handlers: nil clock")
		}
		s.now = now
		return nil
	}
}

// WithPublishTimeout bounds the wait for the result stream's acknowledgement.
func WithPublishTimeout(d time.Duration) Option {
	return func(s *Service) error {
		if d <= 0 {
			return errors.New("handlers: publish timeout must be positive")
		}
		s.publishTimeout = d
		return nil
	}
}

// WithPublishBudget bounds the time spent storing one result while the
// result stream does not answer (its leader lost, the connection moving to
// another server): the publish is tried again within it, because the
// answer is in hand and a redelivery would ask Defender again. After it
// the request is redelivered (default DefaultPublishBudget).
func WithPublishBudget(d time.Duration) Option {
	return func(s *Service) error {
		if d < 0 {
			return errors.New("handlers: publish budget must not be negative")
		}
		s.publishBudget = d
		return nil
	}
}

// DefaultPublishBudget covers the election of a new stream leader in a
// three-node cluster (a few seconds) with room to spare.
const DefaultPublishBudget = 20 * time.Second

// WithMaxResultBytes sets the largest result message the server stores
// (its max_payload, headers included; default DefaultMaxResultBytes). A
// result that would be larger is replaced by a bad_response failure.
func WithMaxResultBytes(n int) Option {
	return func(s *Service) error {
		if n < 64<<10 {
			return fmt.Errorf("handlers: max result bytes %d is below 64 KiB", n)
		}
		s.maxResult = n
		return nil
	}
}

// WithRetryDelay sets the redelivery delay after a failed publish, by the
// number of the delivery that failed.
func WithRetryDelay(f func(delivery uint64) time.Duration) Option {
	return func(s *Service) error {
		if f == nil {
			return errors.New("handlers: nil retry delay")
		}
		s.retryDelay = f
		return nil
	}
}

// New returns the handler service: lookups through lookup, results published
// through pub to the success and failure subjects.
func New(lookup Lookup, pub Publisher, successSubject, failureSubject string, opts ...Option) (*Service, error) {
	if pub == nil {
		return nil, errors.New("handlers: a publisher is required")
	}
	if successSubject == "" || failureSubject == "" {
		return nil, errors.New("handlers: result subjects are required")
	}
	s := &Service{
		lookup:         lookup,
		pub:            pub,
		successSubject: successSubject,
		failureSubject: failureSubject,
		now:            time.Now,
		publishTimeout: 5 * time.Second,
		publishBudget:  DefaultPublishBudget,
		maxResult:      DefaultMaxResultBytes,
		retryDelay:     DefaultRetryDelay,
	}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	if s.lookup == nil && s.tenants == nil {
		return nil, errors.New("handlers: a lookup (or WithTenants) is required")
	}
	return s, nil
}

// DefaultRetryDelay waits 1s after the first failed publish, doubling up to 30s.
func DefaultRetryDelay(delivery uint64) time.Duration {
	d := time.Second
	for i := uint64(1); i < delivery && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// Handle is the Handler of the service.
func (s *Service) Handle(ctx context.Context, d *Delivery) Outcome {
	var recordErr error
	if d.NumDelivered > 1 && s.answers != nil {
		seq, ok, err := s.answers.Find(ctx, AnswerKey(d.StreamSeq, d.Stored))
		if ok {
			return s.answered(ctx, d, seq)
		}
		recordErr = err
	}
	out := s.handle(ctx, d)
	out.RecordErr = errors.Join(recordErr, out.RecordErr)
	return out
}

// answered is the outcome of a delivery of a request whose result is stored
// at resultSeq already: nothing is published, and the stored result is the
// outcome's, so that its hook runs again.
func (s *Service) answered(ctx context.Context, d *Delivery, resultSeq uint64) Outcome {
	out := Outcome{Action: Ack, Stored: true, Duplicate: true}
	res, err := s.answers.Result(ctx, resultSeq)
	switch {
	case errors.Is(err, ErrResultGone):
		// Stored and since removed by the result stream's limits: done.
		return out
	case err != nil:
		// Redeliver later, when the stored result can be read for its hook.
		out.Action, out.Delay, out.Err = Retry, s.retryDelay(d.NumDelivered), err
		return out
	}
	out.Result, out.AlertID, out.Action = res, res.AlertID, decide(res, nil)
	return out
}

func (s *Service) handle(ctx context.Context, d *Delivery) Outcome {
	req, err := Decode(d.Data, d.Header)
	if err != nil {
		res := Failure(req.AlertID, err, 0, s.now()).WithRequest(d.Data)
		return s.finish(ctx, d, req, s.fallbackRoute(d), res, err)
	}
	rt, err := s.route(d, req)
	if err != nil {
		res := Failure(req.AlertID, err, 0, s.now()).WithRequest(d.Data)
		return s.finish(ctx, d, req, s.fallbackRoute(d), res, err)
	}
	out := Outcome{AlertID: req.AlertID}
	key := s.cacheKey(rt, req.AlertID)
	if s.cache != nil {
		domains, ok, cerr := s.cache.Get(ctx, key)
		out.CacheErr = cerr
		if ok {
			res := Success(req.AlertID, domains, 0, true, s.now())
			return s.merge(out, s.finish(ctx, d, req, rt, res, nil))
		}
	}
	lr, shared, err := s.domains(ctx, rt, key, req.AlertID)
	if err != nil && ctx.Err() != nil && !d.Last() {
		out.Action, out.Err, out.Attempts = HandBack, err, lr.Attempts
		return out
	}
	var res *Result
	if err != nil {
		res = Failure(req.AlertID, err, lr.Attempts, s.now()).WithRequest(d.Data)
	} else {
		res = Success(req.AlertID, lr.Domains, lr.Attempts, false, s.now())
		// The answer is cached before its result is published, so that
		// whoever reacts to the result by asking again finds it cached.
		if s.cache != nil && !shared {
			if cerr := s.cache.Put(ctx, key, res.Domains); cerr != nil {
				out.CacheErr = errors.Join(out.CacheErr, cerr)
			}
		}
	}
	res.Coalesced = shared
	return s.merge(out, s.finish(ctx, d, req, rt, res, err))
}

// route is the tenant of a request and whether the request named it.
type route struct {
	tenant string
	named  bool
}

// subjectTenant is the tenant token of the subject d was published to, or
// "" for the plain request subject.
func (s *Service) subjectTenant(d *Delivery) string {
	if s.tenants == nil {
		return ""
	}
	name, _ := strings.CutPrefix(d.Subject, s.requestSubject+".")
	if name == d.Subject {
		return ""
	}
	return name
}

// route resolves the tenant of a decoded request.
func (s *Service) route(d *Delivery, req Request) (route, error) {
	if s.tenants == nil {
		return route{}, nil
	}
	name, named, err := s.tenants.Resolve(s.subjectTenant(d), req.Tenant, req.EntraTenantID)
	return route{tenant: name, named: named}, err
}

// fallbackRoute is where the failure of a request that cannot be routed
// goes: to the tenant its subject names when that tenant is configured (the
// subject is what NATS permissions allow a customer to publish to), and
// otherwise to the plain subjects, without a tenant.
func (s *Service) fallbackRoute(d *Delivery) route {
	name := s.subjectTenant(d)
	if name == "" {
		return route{}
	}
	if t, named, err := s.tenants.Resolve(name, "", ""); err == nil {
		return route{tenant: t, named: named}
	}
	return route{}
}

// cacheKey is the key of an alert's entry in the result cache (and of its
// shared call): an alert ID cached for one tenant is never an answer for
// another.
func (s *Service) cacheKey(rt route, alertID string) string {
	if rt.tenant == s.plainTenant {
		return alertID
	}
	return rt.tenant + "." + alertID
}

// Routing is where the results of one request go: its tenant, its result
// subjects, and the key of its alert in the result cache.
type Routing struct {
	Tenant                         string
	SuccessSubject, FailureSubject string
	CacheKey                       string
}

// Routing is where the results of req, published to subject, go: what
// Handle does with them, for a result published by another part (the
// safety net's, for a request that ran out of deliveries). A request that
// cannot be routed goes where Handle sends its failure.
func (s *Service) Routing(subject string, req Request) Routing {
	d := &Delivery{Subject: subject}
	rt, err := s.route(d, req)
	if err != nil {
		rt = s.fallbackRoute(d)
	}
	success, failure := s.subjects(rt)
	return Routing{Tenant: rt.tenant, SuccessSubject: success, FailureSubject: failure, CacheKey: s.cacheKey(rt, req.AlertID)}
}

// subjects are the result subjects of a request routed to rt.
func (s *Service) subjects(rt route) (success, failure string) {
	if rt.named && rt.tenant != "" {
		return s.successSubject + "." + rt.tenant, s.failureSubject + "." + rt.tenant
	}
	return s.successSubject, s.failureSubject
}

// domains asks Defender for the domains of alertID, or waits for the answer
// of a call for the same alert that is already in flight (shared is then
// true and the result's attempts 0: this delivery made no call). A shared
// answer that failed only because the other delivery was interrupted is not
// taken: this delivery asks again.
func (s *Service) domains(ctx context.Context, rt route, key, alertID string) (res connector.Result, shared bool, err error) {
	for {
		s.flightsMu.Lock()
		f, inFlight := s.flights[key]
		if !inFlight {
			f = &flight{done: make(chan struct{})}
			if s.flights == nil {
				s.flights = make(map[string]*flight)
			}
			s.flights[key] = f
		}
		s.flightsMu.Unlock()
		if !inFlight {
			return s.lead(ctx, rt, key, alertID, f)
		}
		select {
		case <-ctx.Done():
			return connector.Result{}, false, &connector.Error{Kind: connector.KindUnavailable, Message: "interrupted", Err: ctx.Err()}
		case <-f.done:
			if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded) || errors.Is(f.err, errNoAnswer)) {
				continue
			}
			return connector.Result{Domains: f.res.Domains}, true, f.err
		}
	}
}

// errNoAnswer is what the requests waiting for a lookup see when it
// panicked: they ask again.
var errNoAnswer = errors.New("the shared lookup ended without an answer")

// lead makes the call of flight f and hands its answer to the requests
// waiting for it, also when the lookup panics.
func (s *Service) lead(ctx context.Context, rt route, key, alertID string, f *flight) (connector.Result, bool, error) {
	f.err = errNoAnswer
	defer func() {
		s.flightsMu.Lock()
		delete(s.flights, key)
		s.flightsMu.Unlock()
		close(f.done)
	}()
	if s.tenants != nil {
		f.res, f.err = s.tenants.Domains(ctx, rt.tenant, alertID)
	} else {
		f.res, f.err = s.lookup.Domains(ctx, alertID)
	}
	return f.res, false, f.err
}

func (s *Service) merge(base, out Outcome) Outcome {
	out.CacheErr = errors.Join(base.CacheErr, out.CacheErr)
	return out
}

// finish stamps the request's identity on res, publishes it and decides.
func (s *Service) finish(ctx context.Context, d *Delivery, req Request, rt route, res *Result, reason error) Outcome {
	res.Tenant = rt.tenant
	res.CorrelationID = req.CorrelationID
	res.RequestSequence = d.StreamSeq
	res.Delivery = d.NumDelivered
	traceparent := ""
	if d.Header != nil {
		res.ReplayOf = ReplayOf(d.Header)
		traceparent = d.Header.Get(HeaderTraceparent)
	}
	msgID := ResultMsgID(d.Stream, d.StreamSeq, d.Stored)
	success, failure := s.subjects(rt)
	msg, err := res.Message(res.subject(success, failure), msgID, traceparent)
	if err == nil {
		if size := MessageSize(msg); size > s.maxResult {
			res = res.tooLarge(size, s.maxResult, d.Data, s.now())
			reason = errors.New(res.Error.Message)
			msg, err = res.Message(failure, msgID, traceparent)
		}
	}
	out := Outcome{Result: res, Err: reason, AlertID: req.AlertID, Attempts: res.Attempts}
	var perr error
	if err != nil {
		perr = fmt.Errorf("encode result: %w", err)
	} else {
		// Only an answer that cost a Defender call is worth waiting for the
		// stream: a cached answer or a failure without a call costs nothing
		// to redeliver.
		budget := time.Duration(0)
		if res.Attempts > 0 || res.Coalesced {
			budget = s.publishBudget
		}
		ack, err := s.publish(ctx, msg, budget)
		if err != nil {
			perr = fmt.Errorf("publish result: %w", err)
		} else {
			out.Stored, out.Duplicate = true, ack.Duplicate
			s.record(ctx, d, ack, &out)
		}
	}
	if perr != nil {
		out.Err = errors.Join(reason, perr)
	}
	out.Action = decide(res, perr)
	if out.Action == Retry {
		out.Delay = s.retryDelay(d.NumDelivered)
	}
	return out
}

// publish stores msg in the result stream. The first attempt gets its
// chance even when shutdown has begun (the lookup is done and its answer is
// worth storing); while the stream does not answer, attempts go on, with
// backoff, within budget and until shutdown. Every attempt
// carries the same message ID, so an attempt that was stored although its
// acknowledgement was lost is not stored twice.
func (s *Service) publish(ctx context.Context, msg *nats.Msg, budget time.Duration) (*jetstream.PubAck, error) {
	start := time.Now()
	wait := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.publishTimeout)
		ack, err := s.pub.PublishMsg(pctx, msg)
		cancel()
		if err == nil || !unanswered(err) || time.Since(start)+wait > budget {
			return ack, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ack, err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// unanswered reports a publish that the result stream did not answer, or
// answered "try again": what a stream between leaders, or a connection
// between servers, looks like.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// record writes the record of the result just stored, so that a later
// delivery of the request, even after the duplicate window, finds it. A
// duplicate (the result was stored by an earlier delivery, which may have
// crashed before writing the record) is recorded too, and the stored
// result becomes the outcome's.
func (s *Service) record(ctx context.Context, d *Delivery, ack *jetstream.PubAck, out *Outcome) {
	if s.answers == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.publishTimeout)
	defer cancel()
	if s.recordAnswers {
		if err := s.answers.Record(rctx, AnswerKey(d.StreamSeq, d.Stored), ack.Sequence); err != nil {
			out.RecordErr = err
		}
	}
	if ack.Duplicate {
		stored, err := s.answers.Result(rctx, ack.Sequence)
		if err == nil {
			out.Result = stored
		} else if !errors.Is(err, ErrResultGone) {
			out.RecordErr = errors.Join(out.RecordErr, err)
		}
	}
}

// decide is the one place that chooses what happens to a request message
// once its result was (or could not be) published (a delivery interrupted by
// shutdown before it had a result is handed back by Handle):
//   - no result stored: redeliver later (never a bare Nak, which would
//     redeliver at once and burn the delivery budget); on the last delivery
//     the server's max-deliveries advisory then produces the failure result;
//   - invalid input with its failure result stored: terminate, it can never
//     succeed;
//   - any other stored result: acknowledge.
func decide(res *Result, publishErr error) Action {
	switch {
	case publishErr != nil:
		return Retry
	case res.Kind() == connector.KindInvalidRequest:
		return Terminate
	default:
		return Ack
	}
}
