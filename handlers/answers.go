package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/internal/wait"
	"github.com/alert-domains/alert-domains/message"
)

// Answers is what a replica knows of the result stream: which requests have
// a result, and the successes of the last CACHE_TTL (the cache). See
// ARCHITECTURE.md, "The result stream is the record".
type Answers struct {
	cfg AnswersConfig

	mu       sync.Mutex
	requests map[requestID]uint64 // result sequences, by the request they answer
	storing  map[requestID]bool   // requests whose result this process is storing (Storing)
	cache    map[string]cached    // by CacheKey
	order    []orderItem          // cache keys, oldest first
	applied  uint64               // stream sequence of the last result read
	from     time.Time            // where the first reading started
	horizon  time.Time            // requests stored before it are not held
	pruned   uint64               // requests at or below it were forgotten
	window   time.Duration        // the result stream's duplicate window
	progress chan struct{}        // closed and replaced at a result read while syncing
	syncing  atomic.Int32         // callers of sync waiting for progress
	ready    chan struct{}
	readied  sync.Once
	warnings rate.Sometimes // of results not believed
}

// AnswersConfig is what Answers reads and how.
type AnswersConfig struct {
	JS            jetstream.JetStream
	RequestStream string
	ResultStream  string
	Subjects      message.Subjects
	Consumer      string        // the request consumer: its acknowledgement floor starts the reading
	CacheTTL      time.Duration // 0: no cache
	MaxCache      int           // entries at most; 0: DefaultCacheMaxEntries
	Logger        *slog.Logger
	Ignored       func(reason string) // counts each result not believed
	Now           func() time.Time
}

// DefaultCacheMaxEntries is the number of alerts the cache holds at most.
const DefaultCacheMaxEntries = 200_000

// clockSlack covers clock differences between the streams' leaders.
const clockSlack = time.Minute

// requestID is a request as its results name it (message.ResultMsgID):
// sequence and store time in Unix nanoseconds.
type requestID struct {
	seq    uint64
	stored int64
}

func idOfRequest(req message.StoredRequest) requestID {
	return requestID{seq: req.Seq, stored: req.Stored.UnixNano()}
}

// cached is a success that answers repeated requests, once checked.
type cached struct {
	domains   json.RawMessage
	created   int64 // Unix nanoseconds
	request   requestID
	resultSeq uint64
	checked   bool
}

type orderItem struct {
	key     string
	created int64
}

// ErrResultGone is returned for a result, or its request, no longer stored.
var ErrResultGone = errors.New("result no longer stored")

// NewAnswers returns the record of cfg's result stream; Run reads it.
func NewAnswers(cfg AnswersConfig) *Answers {
	cfg.MaxCache = cmp.Or(max(cfg.MaxCache, 0), DefaultCacheMaxEntries)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Ignored == nil {
		cfg.Ignored = func(string) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Answers{
		cfg:      cfg,
		requests: map[requestID]uint64{},
		storing:  map[requestID]bool{},
		cache:    map[string]cached{},
		progress: make(chan struct{}),
		ready:    make(chan struct{}),
		warnings: rate.Sometimes{Interval: time.Minute},
	}
}

// Ready is closed once the results stored before the start are read.
func (a *Answers) Ready() <-chan struct{} { return a.ready }

// Run reads the result stream until ctx ends, starting again with backoff
// where it stopped when the reading fails.
func (a *Answers) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for ctx.Err() == nil {
		err := a.follow(ctx, sweep.C)
		if ctx.Err() != nil {
			return nil
		}
		a.cfg.Logger.Warn("stored results cannot be read: other replicas' answers are not seen, and old redeliveries wait",
			slog.String("stream", a.cfg.ResultStream), slog.Any("error", err), slog.Duration("retry_in", backoff))
		timing.Sleep(ctx, backoff, nil)
		backoff = min(2*backoff, 10*time.Second)
	}
	return nil
}

func (a *Answers) follow(ctx context.Context, sweep <-chan time.Time) error {
	occ, err := a.start(ctx)
	if err != nil {
		return err
	}
	r, err := consumer.Open(ctx, a.cfg.JS, a.cfg.ResultStream, occ)
	if err != nil {
		return err
	}
	defer r.Stop()
	if info, err := r.Info(ctx); err == nil && info.NumPending == 0 {
		a.markReady()
	}
	for {
		select {
		case <-sweep:
			a.sweep()
		default:
		}
		msg, meta, err := r.Next(ctx)
		if err != nil {
			return err
		}
		a.apply(msg, meta)
	}
}

// start is where the reading begins: after the last result read, else at
// the oldest request that may still be delivered, or CACHE_TTL back if earlier.
func (a *Answers) start(ctx context.Context) (jetstream.OrderedConsumerConfig, error) {
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: resultSubjects(a.cfg.Subjects)}
	a.mu.Lock()
	next := a.applied + 1
	a.mu.Unlock()
	if next > 1 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
		return occ, nil
	}
	rs, err := a.cfg.JS.Stream(ctx, a.cfg.ResultStream)
	if err != nil {
		return occ, fmt.Errorf("stream %s: %w", a.cfg.ResultStream, err)
	}
	horizon, err := a.oldestUnanswered(ctx)
	if err != nil {
		return occ, err
	}
	from := horizon.Add(-clockSlack)
	if ttl := a.cfg.Now().Add(-a.cfg.CacheTTL); a.cfg.CacheTTL > 0 && ttl.Before(from) {
		from = ttl
	}
	a.mu.Lock()
	a.horizon, a.window, a.from = horizon, rs.CachedInfo().Config.Duplicates, from
	a.wakeLocked()
	a.mu.Unlock()
	occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	return occ, nil
}

// oldestUnanswered is the store time of the first request after the
// consumer's acknowledgement floor, or now when there is none.
func (a *Answers) oldestUnanswered(ctx context.Context) (time.Time, error) {
	rs, err := a.cfg.JS.Stream(ctx, a.cfg.RequestStream)
	if err != nil {
		return time.Time{}, fmt.Errorf("stream %s: %w", a.cfg.RequestStream, err)
	}
	state := rs.CachedInfo().State
	first := state.FirstSeq
	if c, err := a.cfg.JS.Consumer(ctx, a.cfg.RequestStream, a.cfg.Consumer); err == nil {
		first = max(first, c.CachedInfo().AckFloor.Stream+1)
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return time.Time{}, fmt.Errorf("consumer %s: %w", a.cfg.Consumer, err)
	}
	if state.Msgs == 0 || first > state.LastSeq {
		return a.cfg.Now(), nil
	}
	if m, err := rs.GetMsg(ctx, first); err == nil {
		return m.Time, nil
	}
	return state.FirstTime, nil
}

func resultSubjects(s message.Subjects) []string {
	return []string{s.Success, s.Failure, s.Success + ".*", s.Failure + ".*"}
}

func (a *Answers) apply(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	id, key, entry, notOurs := a.check(msg, meta)
	a.mu.Lock()
	a.applied = max(a.applied, meta.Sequence.Stream)
	a.wakeLocked()
	if notOurs == nil {
		a.recordLocked(id, meta.Sequence.Stream)
		if key != "" {
			a.setLocked(key, entry)
		}
	}
	a.mu.Unlock()
	if notOurs != nil {
		a.ignore(notOurs, msg.Subject(), meta.Sequence.Stream)
	}
	if meta.NumPending == 0 {
		a.markReady()
	}
}

// check returns the request a stored result names (message.Subjects.Label),
// its cache key ("": none) and entry, and why it is not believed; its alert
// and tenant are checked when it is used (Believed, Cached).
func (a *Answers) check(msg jetstream.Msg, meta *jetstream.MsgMetadata) (requestID, string, cached, error) {
	label, err := a.cfg.Subjects.Label(a.cfg.RequestStream, msg.Subject(), msg.Headers())
	if err != nil || label.Stored.IsZero() {
		return requestID{}, "", cached{}, err
	}
	id := requestID{seq: label.Seq, stored: label.Stored.UnixNano()}
	created := meta.Timestamp.UnixNano()
	a.mu.Lock()
	own := a.storing[id] || a.requests[id] == meta.Sequence.Stream
	a.mu.Unlock()
	// Not a success to cache, or one this process stores (Storing) and caches itself.
	if !label.Success || a.cfg.CacheTTL <= 0 || a.cfg.Now().UnixNano() >= created+int64(a.cfg.CacheTTL) || own {
		return id, "", cached{}, nil
	}
	var r struct {
		AlertID         string          `json:"alertId"`
		API             connector.API   `json:"api"`
		Domains         json.RawMessage `json:"domains"`
		Cached          *bool           `json:"cached"`
		RequestSequence uint64          `json:"requestSequence"`
	}
	switch {
	case json.Unmarshal(msg.Data(), &r) != nil || r.AlertID == "" || len(r.Domains) == 0 || r.Domains[0] != '[':
		return requestID{}, "", cached{}, &message.NotOurs{Reason: message.ReasonBody, Detail: "not a success result's JSON"}
	case r.RequestSequence != label.Seq:
		return requestID{}, "", cached{}, &message.NotOurs{Reason: message.ReasonMessageID, Detail: "its body and its message ID name different requests"}
	case r.Cached != nil && *r.Cached:
		return id, "", cached{}, nil // an answer given again: its entry keeps the call's age
	}
	tenant := cmp.Or(label.Tenant, a.cfg.Subjects.Plain)
	return id, CacheKey(a.cfg.Subjects.Plain, tenant, r.API, r.AlertID),
		cached{domains: r.Domains, created: created, request: id, resultSeq: meta.Sequence.Stream}, nil
}

// resultSeqOf is the sequence of id's result, or 0 when it is not known.
func (a *Answers) resultSeqOf(id requestID) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests[id]
}

// ignore counts a result not believed and warns once a minute at most.
func (a *Answers) ignore(err error, subject string, seq uint64) {
	reason, detail := message.ReasonRequest, err.Error()
	if why, ok := errors.AsType[*message.NotOurs](err); ok {
		reason, detail = why.Reason, why.Detail
	}
	a.cfg.Ignored(reason)
	a.warnings.Do(func() {
		a.cfg.Logger.Warn("a message on a result subject was not written by the service and is ignored (see alert_domains_results_ignored_total)",
			slog.String("reason", message.Printable(detail, 256)), slog.String("subject", message.Printable(subject, 256)), slog.Uint64("result_seq", seq))
	})
}

func (a *Answers) markReady() { a.readied.Do(func() { close(a.ready) }) }

// recordLocked records that id has its result at resultSeq, unless id is forgotten.
func (a *Answers) recordLocked(id requestID, resultSeq uint64) {
	if id.seq > a.pruned && id.stored != 0 {
		a.requests[id] = resultSeq
	}
}

// Storing marks req's result as being stored by this process until done:
// the reading of the stream, which often sees it first, leaves it to Stored.
func (a *Answers) Storing(req message.StoredRequest) (done func()) {
	id := idOfRequest(req)
	a.mu.Lock()
	a.storing[id] = true
	a.mu.Unlock()
	return func() { a.mu.Lock(); delete(a.storing, id); a.mu.Unlock() }
}

// Stored records a result this process has just stored at resultSeq for req.
func (a *Answers) Stored(req message.StoredRequest, resultSeq uint64, res *message.Result, key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !req.Stored.IsZero() {
		a.recordLocked(idOfRequest(req), resultSeq)
	}
	if a.cfg.CacheTTL <= 0 || key == "" || res.Status != message.StatusSuccess || (res.Cached != nil && *res.Cached) {
		return
	}
	domains, err := json.Marshal(res.Domains)
	if err != nil {
		return
	}
	a.setLocked(key, cached{domains: domains, created: a.cfg.Now().UnixNano(), request: idOfRequest(req), resultSeq: resultSeq, checked: true})
}

// Done forgets the requests at or below the acknowledgement floor.
func (a *Answers) Done(floor uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if floor <= a.pruned {
		return
	}
	maps.DeleteFunc(a.requests, func(id requestID, _ uint64) bool { return id.seq <= floor })
	a.pruned = floor
}

// Find returns where the result of req is stored, if it has one: from
// memory for a request younger than half the duplicate window, after a sync
// for an older one, by a search for one before the horizon.
func (a *Answers) Find(ctx context.Context, req message.StoredRequest) (resultSeq uint64, found bool, err error) {
	a.mu.Lock()
	resultSeq, found = a.requests[idOfRequest(req)]
	window, horizon, pruned := a.window, a.horizon, a.pruned
	a.mu.Unlock()
	if found {
		return resultSeq, true, nil
	}
	if req.Stored.IsZero() || a.cfg.Now().Sub(req.Stored) < window/2 {
		return 0, false, nil
	}
	defer wait.Begin(ctx, false)()
	if req.Seq <= pruned || req.Stored.Before(horizon) {
		return a.search(ctx, req)
	}
	if err := a.sync(ctx); err != nil {
		return 0, false, err
	}
	resultSeq = a.resultSeqOf(idOfRequest(req))
	return resultSeq, resultSeq != 0, nil
}

// sync waits until the reading has read the last result stored now (looked
// up by subject), or that result is older than where the reading started.
func (a *Answers) sync(ctx context.Context) error {
	a.syncing.Add(1)
	defer a.syncing.Add(-1)
	for {
		last, stored, err := a.lastResult(ctx)
		if err != nil {
			return fmt.Errorf("stored results: %w", err)
		}
		for again := time.After(5 * time.Second); ; {
			a.mu.Lock()
			progress, applied, from := a.progress, a.applied, a.from
			a.mu.Unlock()
			if applied >= last || (!from.IsZero() && stored.Before(from)) {
				return nil
			}
			select {
			case <-progress:
				continue
			case <-again: // the last result may have been deleted
			case <-ctx.Done():
				return ctx.Err()
			}
			break
		}
	}
}

func (a *Answers) wakeLocked() {
	if a.syncing.Load() > 0 {
		close(a.progress)
		a.progress = make(chan struct{})
	}
}

// lastResult is the sequence and store time of the last result (0: none).
func (a *Answers) lastResult(ctx context.Context) (seq uint64, stored time.Time, err error) {
	s, err := a.cfg.JS.Stream(ctx, a.cfg.ResultStream)
	if err != nil {
		return 0, time.Time{}, err
	}
	for _, subject := range resultSubjects(a.cfg.Subjects) {
		switch m, err := s.GetLastMsgForSubject(ctx, subject); {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, time.Time{}, err
		case m.Sequence > seq:
			seq, stored = m.Sequence, m.Time
		}
	}
	return seq, stored, nil
}

func (a *Answers) search(ctx context.Context, req message.StoredRequest) (resultSeq uint64, found bool, err error) {
	id := message.ResultMsgID(a.cfg.RequestStream, req.Seq, req.Stored)
	from := req.Stored.Add(-clockSlack)
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: resultSubjects(a.cfg.Subjects),
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
	}
	err = consumer.Scan(ctx, a.cfg.JS, a.cfg.ResultStream, occ, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if m.Headers().Get(nats.MsgIdHdr) == id {
			resultSeq, found = meta.Sequence.Stream, true
		}
		return !found, nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("stored results: %w", err)
	}
	return resultSeq, found, nil
}

// Believed reads the result at resultSeq if it is the service's result of
// req (message.Subjects.Believe), else counts it and returns a *message.NotOurs.
func (a *Answers) Believed(ctx context.Context, req message.StoredRequest, resultSeq uint64) (*message.Result, error) {
	m, err := a.read(ctx, a.cfg.ResultStream, resultSeq)
	if err != nil {
		return nil, err
	}
	res, err := a.cfg.Subjects.Believe(a.cfg.RequestStream, req, m.Subject, m.Header, m.Data)
	if err != nil {
		a.ignore(err, m.Subject, resultSeq)
	}
	return res, err
}

func (a *Answers) read(ctx context.Context, stream string, seq uint64) (*jetstream.RawStreamMsg, error) {
	s, err := a.cfg.JS.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrResultGone
	}
	if err != nil {
		return nil, fmt.Errorf("read message %d of %s: %w", seq, stream, err)
	}
	return m, nil
}

// Cached returns the domains of the success cached under key (CacheKey)
// less than CACHE_TTL ago; an entry read from the stream is checked first.
func (a *Answers) Cached(ctx context.Context, key string) ([]string, bool) {
	a.mu.Lock()
	e, ok := a.cache[key]
	a.mu.Unlock()
	if !ok || a.cfg.Now().UnixNano() >= e.created+int64(a.cfg.CacheTTL) {
		return nil, false
	}
	if !e.checked {
		err := a.checkEntry(ctx, e)
		a.mu.Lock()
		if cur, held := a.cache[key]; held && cur.resultSeq == e.resultSeq && err != nil {
			delete(a.cache, key)
		} else if held && cur.resultSeq == e.resultSeq {
			cur.checked = true
			a.cache[key] = cur
		}
		a.mu.Unlock()
		if err != nil {
			return nil, false
		}
	}
	var domains []string
	if json.Unmarshal(e.domains, &domains) != nil {
		return nil, false
	}
	return domains, true
}

// checkEntry checks a cached success against the request it names.
func (a *Answers) checkEntry(ctx context.Context, e cached) error {
	m, err := a.read(ctx, a.cfg.RequestStream, e.request.seq)
	if err != nil {
		return err
	}
	if m.Time.UnixNano() != e.request.stored {
		return ErrResultGone
	}
	_, err = a.Believed(ctx, message.StoredRequest{Subject: m.Subject, Data: m.Data, Header: m.Header, Seq: m.Sequence, Stored: m.Time}, e.resultSeq)
	return err
}

// FirstUnanswered is the first request in [from, last] without a result
// (last+1: none), where a re-created consumer starts; from must be above
// the floor given to Done.
func (a *Answers) FirstUnanswered(ctx context.Context, from, last uint64) (uint64, error) {
	if err := a.sync(ctx); err != nil {
		return 0, err
	}
	first := last + 1
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{a.cfg.Subjects.Request, a.cfg.Subjects.Request + ".*"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(from, 1),
		HeadersOnly:    true,
	}
	err := consumer.Scan(ctx, a.cfg.JS, a.cfg.RequestStream, occ, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if meta.Sequence.Stream > last {
			return false, nil
		}
		answered := a.resultSeqOf(requestID{seq: meta.Sequence.Stream, stored: meta.Timestamp.UnixNano()}) != 0
		if !answered {
			first = meta.Sequence.Stream
		}
		return answered, nil
	})
	if err != nil {
		return 0, fmt.Errorf("stored requests: %w", err)
	}
	return first, nil
}

// setLocked caches e under key unless a later answer is, evicting beyond the bound.
func (a *Answers) setLocked(key string, e cached) {
	if cur, held := a.cache[key]; held && cur.created > e.created {
		return
	}
	a.cache[key] = e
	a.order = append(a.order, orderItem{key: key, created: e.created})
	for len(a.cache) > a.cfg.MaxCache && len(a.order) > 0 {
		a.popLocked()
	}
	if len(a.order) > 2*len(a.cache)+1024 {
		a.order = slices.DeleteFunc(a.order, func(it orderItem) bool {
			cur, held := a.cache[it.key]
			return !held || cur.created != it.created
		})
	}
}

func (a *Answers) popLocked() {
	it := a.order[0]
	a.order[0] = orderItem{}
	a.order = a.order[1:]
	if cur, held := a.cache[it.key]; held && cur.created == it.created {
		delete(a.cache, it.key)
	}
}

func (a *Answers) sweep() {
	limit := a.cfg.Now().UnixNano() - int64(a.cfg.CacheTTL)
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.order) > 0 && a.order[0].created <= limit {
		a.popLocked()
	}
	if len(a.order) == 0 {
		a.order = nil
	}
}

// CacheKey is the key of an alert's entry in the cache and of its call:
// [graph:][<tenant>.]<alert ID>, the tenant omitted for plainTenant.
func CacheKey(plainTenant, tenant string, api connector.API, alertID string) string {
	key := alertID
	if tenant != plainTenant {
		key = tenant + "." + alertID
	}
	if api == connector.Graph {
		key = "graph:" + key
	}
	return key
}
