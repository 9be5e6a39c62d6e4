package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/park"
	"github.com/alert-domains/alert-domains/message"
)

// SharedFlights lets the replicas of a service share one Defender call per
// alert, as the flights of one Service share it within a process.
//
// A call in progress is a claim: a message on <claims>.<hash of the cache
// key> in a stream that keeps one message per subject and refuses a second
// (MaxMsgsPerSubject 1, DiscardNewPerSubject), and drops it after the hold
// (the stream's MaxAge). The replica whose claim the stream accepts makes
// the call; it then puts the answer in the cache, publishes it on
// <answers>.<hash> (plain NATS) and deletes its claim. A replica whose
// claim is refused subscribed to <answers>.<hash> before it tried, and
// waits for that answer; while it waits it looks at the claim, and when
// the claim is gone without an answer reaching it (its holder was
// interrupted, or the answer crossed the subscription), it looks in the
// cache and claims again. A holder that died leaves its claim until the
// hold, after which the stream drops it and a waiter claims.
//
// A claim is a hint: when the stream cannot be reached the replica calls
// Defender as if no other replica existed (the quota still holds), and for
// a while after such a failure it does not try to claim.
type SharedFlights struct {
	js                      jetstream.JetStream
	nc                      *nats.Conn
	stream                  string
	claimPrefix, answerPref string
	hold                    time.Duration
	timeout                 time.Duration
	poll                    time.Duration
	pause                   time.Duration
	logger                  *slog.Logger

	// sharing: claims are made (Share); off, every call is made alone.
	sharing atomic.Bool

	mu     sync.Mutex
	claims jetstream.Stream // looked up once
	// offUntil: after the stream failed to answer, no claim is tried
	// before this time (each try would cost its time-out).
	offUntil time.Time
	// failing: the last try failed (its warning is logged once).
	failing bool
}

// SharedFlightsOption configures SharedFlights.
type SharedFlightsOption func(*SharedFlights)

// WithFlightsLogger logs the claim stream's failures to logger.
func WithFlightsLogger(logger *slog.Logger) SharedFlightsOption {
	return func(f *SharedFlights) { f.logger = logger }
}

// WithFlightsTiming sets the time-out of one claim operation, the interval
// at which a waiter looks at the claim it waits for, and how long claims
// are not tried after the stream failed (defaults 2s, 250ms, 5s).
func WithFlightsTiming(timeout, poll, pause time.Duration) SharedFlightsOption {
	return func(f *SharedFlights) { f.timeout, f.poll, f.pause = timeout, poll, pause }
}

// NewSharedFlights shares calls through the claims stream named stream,
// whose subjects are claimSubjects.* and whose MaxAge is hold; answers go
// to answerSubjects.*.
func NewSharedFlights(js jetstream.JetStream, nc *nats.Conn, stream, claimSubjects, answerSubjects string, hold time.Duration, opts ...SharedFlightsOption) (*SharedFlights, error) {
	if js == nil || nc == nil || stream == "" || claimSubjects == "" || answerSubjects == "" || hold <= 0 {
		return nil, errors.New("handlers: shared flights need a connection, the claims stream, its subjects and a hold")
	}
	f := &SharedFlights{
		js: js, nc: nc, stream: stream, claimPrefix: claimSubjects, answerPref: answerSubjects, hold: hold,
		timeout: 2 * time.Second, poll: 250 * time.Millisecond, pause: 5 * time.Second,
		logger: slog.New(slog.DiscardHandler),
	}
	f.sharing.Store(true)
	for _, o := range opts {
		o(f)
	}
	return f, nil
}

// Share turns the claims on or off (on at first). Off, a call is made
// without a claim and no other replica waits for it: what a replica alone
// does, to save the claim's two writes per call. Replicas that share and
// replicas that do not can run side by side: only a replica that shares
// waits, and only for the claim of one that shares.
func (f *SharedFlights) Share(on bool) { f.sharing.Store(on) }

// FlightToken is the last subject token of a cache key's claim and answer:
// a hash, so that any key (a tenant and an alert ID) makes one token.
func FlightToken(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

// flightAnswer is what a holder publishes to the waiters: the domains, or
// the failure as a result shows it (never more: no secret is in it), or
// that it ended without an answer.
type flightAnswer struct {
	Domains   []string           `json:"domains,omitempty"`
	Failure   *message.ErrorInfo `json:"failure,omitempty"`
	Abandoned bool               `json:"abandoned,omitempty"`
}

// err is the failure of an answer as the waiter's lookup error.
func (a *flightAnswer) err() error {
	if a.Failure == nil {
		return nil
	}
	return &connector.Error{Kind: a.Failure.Kind, Message: a.Failure.Message, HTTPStatus: a.Failure.HTTPStatus,
		Code: a.Failure.Code, Target: a.Failure.Target}
}

// claim is a call this replica holds.
type claim struct {
	subject, answer string
	seq             uint64
}

// joined is how a join ended: this replica holds the call (claim), another
// replica answered (answer), the claim went without an answer (gone: look
// in the cache and join again), or none (the stream failed: call alone).
type joined struct {
	claim  *claim
	answer *flightAnswer
	gone   bool
}

// join claims the call for key, or waits for the replica that holds it.
// Its error is ctx's, when ctx ends while it waits.
func (f *SharedFlights) join(ctx context.Context, key string) (joined, error) {
	if !f.sharing.Load() || f.off() {
		return joined{}, nil
	}
	token := FlightToken(key)
	c := &claim{subject: f.claimPrefix + "." + token, answer: f.answerPref + "." + token}
	// Subscribed before the claim is tried, so that the holder's answer,
	// published after the claim was stored, cannot pass unseen.
	answers := make(chan *nats.Msg, 4)
	sub, err := f.nc.ChanSubscribe(c.answer, answers)
	if err != nil {
		f.failed("subscribe to the answers of a shared call", err)
		return joined{}, nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	for {
		seq, err := f.claim(ctx, c.subject)
		if err == nil {
			f.working()
			c.seq = seq
			if a := arrived(answers); a != nil {
				// The call this replica waited for (or saw released)
				// was answered just before the claim: take that answer.
				f.drop(c)
				return joined{answer: a}, nil
			}
			return joined{claim: c}, nil
		}
		if !errors.Is(err, errClaimed) {
			if ctx.Err() != nil {
				return joined{}, ctx.Err()
			}
			f.failed("claim a call", err)
			return joined{}, nil
		}
		held, ok, err := f.holder(ctx, c.subject)
		if err != nil {
			if ctx.Err() != nil {
				return joined{}, ctx.Err()
			}
			f.failed("read a claim", err)
			return joined{}, nil
		}
		if !ok {
			// Released between the refusal and the read.
			if a := arrived(answers); a != nil {
				return joined{answer: a}, nil
			}
			return joined{gone: true}, nil
		}
		j, err := f.wait(ctx, c.subject, held, answers)
		if j.gone {
			if a := arrived(answers); a != nil {
				return joined{answer: a}, nil
			}
		}
		if err != nil || j.answer != nil || j.gone {
			return j, err
		}
		// The hold is over and the claim still there (the stream drops it
		// within a moment): claim again.
	}
}

// arrived is the answer waiting in answers, if one is there.
func arrived(answers <-chan *nats.Msg) *flightAnswer {
	select {
	case m := <-answers:
		var a flightAnswer
		if json.Unmarshal(m.Data, &a) == nil && !a.Abandoned {
			return &a
		}
	default:
	}
	return nil
}

// errClaimed is a claim refused because another replica holds the call.
var errClaimed = errors.New("the call is claimed by another replica")

// claim stores a claim on subject; errClaimed when one is there.
func (f *SharedFlights) claim(ctx context.Context, subject string) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	ack, err := f.js.PublishMsg(cctx, &nats.Msg{Subject: subject, Header: nats.Header{}})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "maximum messages per subject") {
		return 0, errClaimed
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// errCodeStoreFailed is the server's refusal to store a message; its
// description tells a claim refused (a message beyond MaxMsgsPerSubject
// with DiscardNewPerSubject) from a stream that cannot store.
const errCodeStoreFailed jetstream.ErrorCode = 10077

// holding is the claim a waiter waits for.
type holding struct {
	seq   uint64
	until time.Time // when the stream drops it
}

// holder reads the claim on subject; ok is false when there is none.
func (f *SharedFlights) holder(ctx context.Context, subject string) (holding, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	s, err := f.handle(cctx)
	if err != nil {
		return holding{}, false, err
	}
	m, err := s.GetLastMsgForSubject(cctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return holding{}, false, nil
	}
	if err != nil {
		return holding{}, false, err
	}
	return holding{seq: m.Sequence, until: m.Time.Add(f.hold)}, true, nil
}

// wait waits for the answer of the holder of the claim on subject, looking
// at the claim every poll interval. It returns with neither answer nor gone
// when the hold of the claim it waited for is over.
func (f *SharedFlights) wait(ctx context.Context, subject string, held holding, answers <-chan *nats.Msg) (joined, error) {
	// Waiting for another replica's call holds no worker.
	defer park.Wait(ctx)()
	t := time.NewTimer(f.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return joined{}, ctx.Err()
		case m := <-answers:
			var a flightAnswer
			if err := json.Unmarshal(m.Data, &a); err != nil || a.Abandoned {
				return joined{gone: true}, nil
			}
			return joined{answer: &a}, nil
		case <-t.C:
		}
		now, ok, err := f.holder(ctx, subject)
		switch {
		case err != nil && ctx.Err() != nil:
			return joined{}, ctx.Err()
		case err != nil:
			f.failed("read a claim", err)
			return joined{}, nil
		case !ok || now.seq != held.seq:
			// Released, or dropped and claimed anew: what was answered is
			// in the cache, or the new holder's answer is worth waiting for.
			return joined{gone: true}, nil
		case time.Now().After(held.until):
			return joined{}, nil
		}
		t.Reset(min(f.poll, max(time.Until(held.until), time.Millisecond)))
	}
}

// release hands the answer of the call to the waiting replicas and deletes
// the claim. The answer goes first, so that a waiter who finds the claim
// gone finds the answer in the cache (put before release is called).
func (f *SharedFlights) release(c *claim, res connector.Result, lookupErr error, answered bool) {
	a := flightAnswer{Abandoned: !answered}
	if answered {
		if lookupErr != nil {
			a.Failure = message.ErrorInfoOf(lookupErr)
		} else {
			a.Domains = res.Domains
			if a.Domains == nil {
				a.Domains = []string{}
			}
		}
	}
	if data, err := json.Marshal(a); err == nil {
		if err := f.nc.Publish(c.answer, data); err != nil {
			f.logger.Warn("cannot publish the answer of a shared call", slog.Any("error", err))
		}
	}
	f.drop(c)
}

// drop deletes claim c. It is not waited for: the request has its answer;
// a claim left behind only makes a later miss wait for it until the hold.
func (f *SharedFlights) drop(c *claim) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		defer cancel()
		s, err := f.handle(ctx)
		if err == nil {
			err = s.DeleteMsg(ctx, c.seq)
		}
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			f.logger.Warn("cannot release a shared call", slog.Any("error", err))
		}
	}()
}

// handle is the claims stream, looked up at its first use.
func (f *SharedFlights) handle(ctx context.Context) (jetstream.Stream, error) {
	f.mu.Lock()
	s := f.claims
	f.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := f.js.Stream(ctx, f.stream)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.claims = s
	f.mu.Unlock()
	return s, nil
}

// off reports whether claims are paused after a failure of the stream.
func (f *SharedFlights) off() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Before(f.offUntil)
}

// failed pauses claims after the stream failed: calls go on, unshared.
func (f *SharedFlights) failed(what string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Now().Before(f.offUntil) {
		return
	}
	f.offUntil = time.Now().Add(f.pause)
	level := slog.LevelWarn
	if f.failing {
		level = slog.LevelDebug
	}
	f.failing = true
	f.logger.Log(context.Background(), level, "cannot "+what+"; calls are not shared with other replicas for a while",
		slog.Any("error", err), slog.Duration("for", f.pause))
}

// working notes a claim that the stream accepted after failures.
func (f *SharedFlights) working() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		f.failing = false
		f.logger.Info("calls are shared with other replicas again")
	}
}
