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
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/park"
	"github.com/alert-domains/alert-domains/message"
)

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
	// then go to the tenant's own subjects). Errors are *message.Error of
	// kind unknown_tenant, or invalid_request when two names disagree.
	Resolve(subjectTenant, bodyTenant, entraTenantID string) (tenant string, named bool, err error)
	// Domains asks the Defender of tenant for the domains of an alert.
	Domains(ctx context.Context, tenant, alertID string) (connector.Result, error)
	// API is the Microsoft API that answers for tenant.
	API(tenant string) connector.API
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
	successSubject string
	failureSubject string
	cache          Cache
	answers        Answers
	recordAnswers  bool // write a record of each stored result (WithAnswers)
	earlier        *EarlierResults
	now            func() time.Time
	results        ResultPublisher
	retryDelay     func(delivery uint64) time.Duration
	// flights makes concurrent requests for the same alert share one
	// Defender call: a SIEM that sends an alert again on every update then
	// costs one call, not one per copy in flight. The call runs on the
	// goroutine of the first request (singleflight.DoChan would start a
	// goroutine per call, whose stack grows again through the whole HTTP
	// path every time).
	flightsMu sync.Mutex
	flights   map[string]*flight
	// shared extends the flights to the other replicas (WithSharedFlights):
	// the leader of a flight joins the replicas' call for its key.
	shared *SharedFlights
}

// flight is a Defender call in progress, shared by the requests for its
// alert.
type flight struct {
	done chan struct{} // closed when res and err are set
	res  connector.Result
	err  error
}

// WithSharedFlights shares each Defender call with the other replicas
// through f: a request for an alert that another replica is asking
// Defender about waits for that replica's answer.
func WithSharedFlights(f *SharedFlights) Option {
	return func(s *Service) error {
		if f == nil {
			return errors.New("handlers: nil shared flights")
		}
		s.shared = f
		return nil
	}
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

// WithEarlierResults looks for a redelivered request's result in the
// result stream (through e) when it has no record and is old enough for
// the stream's duplicate window to have forgotten a result stored by its
// first delivery: the request is then acknowledged with that result,
// without a Defender call. A younger redelivery, and every first delivery,
// costs nothing more.
func WithEarlierResults(e *EarlierResults) Option {
	return func(s *Service) error {
		if e == nil {
			return errors.New("handlers: nil earlier results")
		}
		s.earlier = e
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
		s.results.Timeout = d
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
		s.results.Budget = d
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
		s.results.MaxBytes = n
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
		successSubject: successSubject,
		failureSubject: failureSubject,
		now:            time.Now,
		results:        ResultPublisher{Pub: pub, Timeout: 5 * time.Second, Budget: DefaultPublishBudget, MaxBytes: message.DefaultMaxResultBytes},
		retryDelay:     consumer.DefaultRetryDelay,
	}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	if s.lookup == nil && s.tenants == nil {
		return nil, errors.New("handlers: a lookup (or WithTenants) is required")
	}
	s.results.Answers, s.results.Now = s.answers, s.now
	return s, nil
}

// Handle is the Handler of the service.
func (s *Service) Handle(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
	var recordErr error
	if d.NumDelivered > 1 && s.answers != nil {
		seq, ok, err := s.answers.Find(ctx, message.AnswerKey(d.StreamSeq, d.Stored))
		if ok {
			return s.answered(ctx, d, seq, s.answers)
		}
		recordErr = err
	}
	if d.NumDelivered > 1 && s.earlier != nil {
		seq, ok, looked, err := s.findEarlier(ctx, d)
		if ok {
			return s.answered(ctx, d, seq, s.earlier)
		}
		recordErr = errors.Join(recordErr, err)
		if looked {
			ctx = context.WithValue(ctx, earlierLookedKey{}, true)
		}
	}
	out := s.handle(ctx, d)
	out.RecordErr = errors.Join(recordErr, out.RecordErr)
	return out
}

// earlierLookedKey marks the context of a delivery whose earlier result
// was looked for when it began: finish need not look again.
type earlierLookedKey struct{}

// findEarlier looks in the result stream for a result of d stored by an
// earlier delivery (EarlierResults.FindStored). finish looks again before
// publishing when the lookup took a delivery that was too young past half
// the window.
func (s *Service) findEarlier(ctx context.Context, d *consumer.Delivery) (seq uint64, found, looked bool, err error) {
	return s.earlier.FindStored(ctx, d.Stream, d.StreamSeq, d.Stored)
}

// answered is the outcome of a delivery of a request whose result is stored
// at resultSeq already (read through r): nothing is published, and the
// stored result is the outcome's, so that its hook runs again.
func (s *Service) answered(ctx context.Context, d *consumer.Delivery, resultSeq uint64, r ResultReader) consumer.Outcome {
	out := consumer.Outcome{Action: consumer.Ack, Stored: true, Duplicate: true}
	res, err := r.Result(ctx, resultSeq)
	switch {
	case errors.Is(err, ErrResultGone):
		// Stored and since removed by the result stream's limits: done.
		return out
	case err != nil:
		// Redeliver later, when the stored result can be read for its hook.
		out.Action, out.Delay, out.Err = consumer.Decide(consumer.Facts{}), s.retryDelay(d.NumDelivered), err
		return out
	}
	out.Result, out.AlertID, out.Action = res, res.AlertID, consumer.Decide(consumer.Facts{Result: res, Stored: true})
	return out
}

func (s *Service) handle(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
	req, err := message.Decode(d.Data, d.Header)
	if err != nil {
		res := message.Failure(req.AlertID, err, 0, s.now()).WithRequest(d.Data)
		return s.finish(ctx, d, req, s.fallbackRoute(d), res, err)
	}
	rt, err := s.route(d, req)
	if err != nil {
		res := message.Failure(req.AlertID, err, 0, s.now()).WithRequest(d.Data)
		return s.finish(ctx, d, req, s.fallbackRoute(d), res, err)
	}
	out := consumer.Outcome{AlertID: req.AlertID}
	key := s.cacheKey(rt, req.AlertID)
	if s.cache != nil {
		domains, ok, cerr := s.cache.Get(ctx, key)
		out.CacheErr = cerr
		if ok {
			res := message.Success(req.AlertID, domains, 0, true, s.now())
			return s.merge(out, s.finish(ctx, d, req, rt, res, nil))
		}
	}
	lr, shared, cerr, err := s.domains(ctx, rt, key, req.AlertID)
	out.CacheErr = errors.Join(out.CacheErr, cerr)
	if err != nil && ctx.Err() != nil {
		if a := consumer.Decide(consumer.Facts{Interrupted: true, Last: d.Last()}); a == consumer.HandBack {
			out.Action, out.Err, out.Attempts = a, err, lr.Attempts
			return out
		}
	}
	var res *message.Result
	if err != nil {
		res = message.Failure(req.AlertID, err, lr.Attempts, s.now()).WithRequest(d.Data)
	} else {
		res = message.Success(req.AlertID, lr.Domains, lr.Attempts, false, s.now())
		res.GraphAlertID = lr.GraphAlertID
	}
	res.Coalesced = shared
	return s.merge(out, s.finish(ctx, d, req, rt, res, err))
}

// route is the tenant of a request, whether the request named it, and the
// API that answers for the tenant.
type route struct {
	tenant string
	named  bool
	api    connector.API
}

// subjectTenant is the tenant token of the subject d was published to, or
// "" for the plain request subject.
func (s *Service) subjectTenant(d *consumer.Delivery) string {
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
func (s *Service) route(d *consumer.Delivery, req message.Request) (route, error) {
	if s.tenants == nil {
		return route{api: s.lookupAPI()}, nil
	}
	name, named, err := s.tenants.Resolve(s.subjectTenant(d), req.Tenant, req.EntraTenantID)
	if err != nil {
		return route{tenant: name, named: named}, err
	}
	return route{tenant: name, named: named, api: s.tenants.API(name)}, nil
}

// lookupAPI is the API of the service's lookup, when it says.
func (s *Service) lookupAPI() connector.API {
	if l, ok := s.lookup.(interface{ API() connector.API }); ok {
		return l.API()
	}
	return ""
}

// fallbackRoute is where the failure of a request that cannot be routed
// goes: to the tenant its subject names when that tenant is configured (the
// subject is what NATS permissions allow a customer to publish to), and
// otherwise to the plain subjects, without a tenant.
func (s *Service) fallbackRoute(d *consumer.Delivery) route {
	name := s.subjectTenant(d)
	if name == "" {
		return route{}
	}
	if t, named, err := s.tenants.Resolve(name, "", ""); err == nil {
		return route{tenant: t, named: named, api: s.tenants.API(t)}
	}
	return route{}
}

// cacheKey is the key of an alert's entry in the result cache (and of its
// shared call): an alert ID cached for one tenant is never an answer for
// another.
func (s *Service) cacheKey(rt route, alertID string) string {
	return CacheKey(s.plainTenant, rt.tenant, rt.api, alertID)
}

// Routing is where the results of one request go: its tenant, its result
// subjects, and the key of its alert in the result cache.
type Routing struct {
	Tenant                         string
	API                            connector.API
	SuccessSubject, FailureSubject string
	CacheKey                       string
}

// Routing is where the results of req, published to subject, go: what
// Handle does with them, for a result published by another part (the
// safety net's, for a request that ran out of deliveries). A request that
// cannot be routed goes where Handle sends its failure.
func (s *Service) Routing(subject string, req message.Request) Routing {
	d := &consumer.Delivery{Subject: subject}
	rt, err := s.route(d, req)
	if err != nil {
		rt = s.fallbackRoute(d)
	}
	success, failure := s.subjects(rt)
	return Routing{Tenant: rt.tenant, API: rt.api, SuccessSubject: success, FailureSubject: failure, CacheKey: s.cacheKey(rt, req.AlertID)}
}

// subjects are the result subjects of a request routed to rt.
func (s *Service) subjects(rt route) (success, failure string) {
	if rt.named && rt.tenant != "" {
		return s.successSubject + "." + rt.tenant, s.failureSubject + "." + rt.tenant
	}
	return s.successSubject, s.failureSubject
}

// domains asks Defender for the domains of alertID, or waits for the answer
// of a call for the same alert that is already in flight, in this process
// or another replica (shared is then true and the result's attempts 0:
// this delivery made no call). A shared answer that failed only because
// the other delivery was interrupted is not taken: this delivery asks
// again. cacheErr is the failure to cache the answer of a call this
// delivery made.
func (s *Service) domains(ctx context.Context, rt route, key, alertID string) (res connector.Result, shared bool, cacheErr, err error) {
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
		// Waiting for another delivery's call (which may itself wait for
		// the quota) holds no worker.
		end := park.Wait(ctx)
		select {
		case <-ctx.Done():
			end()
			return connector.Result{}, false, nil, interrupted(ctx)
		case <-f.done:
			end()
			if f.err != nil && (unfinished(f.err) || errors.Is(f.err, errNoAnswer)) {
				continue
			}
			return connector.Result{Domains: f.res.Domains, GraphAlertID: f.res.GraphAlertID}, true, nil, f.err
		}
	}
}

// interrupted is the lookup error of a delivery whose wait ctx ended.
func interrupted(ctx context.Context) error {
	return &connector.Error{Kind: message.KindUnavailable, Message: "interrupted", Err: ctx.Err()}
}

// unfinished reports a lookup that ended because its delivery was
// interrupted, not because Defender answered: not an answer for another.
func unfinished(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// errNoAnswer is what the requests waiting for a lookup see when it
// panicked: they ask again.
var errNoAnswer = errors.New("the shared lookup ended without an answer")

// lead makes the call of flight f (or joins the replicas' call for key)
// and hands its answer to the requests waiting for it, also when the
// lookup panics.
func (s *Service) lead(ctx context.Context, rt route, key, alertID string, f *flight) (res connector.Result, shared bool, cacheErr, err error) {
	f.err = errNoAnswer
	defer func() {
		s.flightsMu.Lock()
		delete(s.flights, key)
		s.flightsMu.Unlock()
		close(f.done)
	}()
	f.res, shared, cacheErr, f.err = s.call(ctx, rt, key, alertID)
	return f.res, shared, cacheErr, f.err
}

// call asks Defender, or, with shared flights, takes the answer of the
// replica that holds the call for key. A call that is not shared with other
// replicas (the claims cannot be reached) is made all the same.
func (s *Service) call(ctx context.Context, rt route, key, alertID string) (res connector.Result, shared bool, cacheErr, err error) {
	for s.shared != nil {
		j, jerr := s.shared.join(ctx, key)
		switch {
		case jerr != nil:
			return connector.Result{}, false, nil, interrupted(ctx)
		case j.answer != nil:
			return connector.Result{Domains: j.answer.Domains}, true, nil, j.answer.err()
		case j.gone:
			// The holder released its claim and its answer did not reach
			// this replica: it is in the cache, unless it was a failure.
			if s.cache != nil {
				if domains, ok, _ := s.cache.Get(ctx, key); ok {
					return connector.Result{Domains: domains}, true, nil, nil
				}
			}
			continue
		case j.claim != nil:
			answered := false
			defer func() {
				if !answered {
					s.shared.release(j.claim, connector.Result{}, nil, false)
				}
			}()
			res, cacheErr, err = s.ask(ctx, rt, key, alertID)
			answered = true
			s.shared.release(j.claim, res, err, !unfinished(err))
			return res, false, cacheErr, err
		}
		break
	}
	res, cacheErr, err = s.ask(ctx, rt, key, alertID)
	return res, false, cacheErr, err
}

// ask makes the Defender call and caches a success: the answer is cached
// before its result is published (and before other replicas hear it), so
// that whoever reacts to the result by asking again finds it cached.
func (s *Service) ask(ctx context.Context, rt route, key, alertID string) (res connector.Result, cacheErr, err error) {
	if s.tenants != nil {
		res, err = s.tenants.Domains(ctx, rt.tenant, alertID)
	} else {
		res, err = s.lookup.Domains(ctx, alertID)
	}
	if err == nil && s.cache != nil {
		domains := res.Domains
		if domains == nil {
			domains = []string{}
		}
		cacheErr = s.cache.Put(ctx, key, domains)
	}
	return res, cacheErr, err
}

func (s *Service) merge(base, out consumer.Outcome) consumer.Outcome {
	out.CacheErr = errors.Join(base.CacheErr, out.CacheErr)
	return out
}

// finish stamps the request's identity on res, publishes it and decides.
func (s *Service) finish(ctx context.Context, d *consumer.Delivery, req message.Request, rt route, res *message.Result, reason error) consumer.Outcome {
	res.Tenant = rt.tenant
	res.API = string(rt.api)
	res.CorrelationID = req.CorrelationID
	res.RequestSequence = d.StreamSeq
	res.Delivery = d.NumDelivered
	res.ReplayOf = message.ReplayOf(d.Header)
	traceparent := ""
	if d.Header != nil {
		traceparent = d.Header.Get(message.HeaderTraceparent)
	}
	var earlierErr error
	if d.NumDelivered > 1 && s.earlier != nil && ctx.Value(earlierLookedKey{}) == nil {
		// The lookup took the delivery past half the window (findEarlier).
		seq, ok, _, err := s.findEarlier(ctx, d)
		if ok {
			return s.answered(ctx, d, seq, s.earlier)
		}
		earlierErr = err
	}
	success, failure := s.subjects(rt)
	out := s.results.Publish(ctx, Publication{
		Stream: d.Stream, Seq: d.StreamSeq, Stored: d.Stored, Body: d.Data,
		Result: res, SuccessSubject: success, FailureSubject: failure, Traceparent: traceparent,
		Record: s.recordAnswers,
	}, reason)
	out.RecordErr = errors.Join(earlierErr, out.RecordErr)
	if out.Action == consumer.Retry {
		out.Delay = s.retryDelay(d.NumDelivered)
	}
	return out
}
