package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/internal/park"
	"github.com/alert-domains/alert-domains/message"
)

// EarlierResults finds a result already stored in the result stream by its
// message ID, for a redelivered request that has no record (Answers): its
// first delivery may have stored the result and stopped before the
// acknowledgement, longer ago than the stream's duplicate window, which
// would then store a second result.
//
// It reads only headers, and one scan serves every request that asks while
// it runs: after an outage many requests come back together, and each
// would otherwise read the same stretch of the stream. The scan starts at
// the earliest request time asked for, keeps the message IDs it has seen,
// follows the stream to its end as of each question, and stops when no
// question has come for a while (its consumer is then deleted). Nothing of
// it runs on a first delivery. Find is answered while Run runs.
type EarlierResults struct {
	js       jetstream.JetStream
	stream   string
	subjects []string
	idle     time.Duration
	maxIDs   int
	logger   *slog.Logger

	asks    chan *earlierAsk
	stopped chan struct{} // closed when Run returns

	// window is the stream's duplicate window as read at windowAt.
	wmu      sync.Mutex
	window   time.Duration
	windowAt time.Time
}

// EarlierOption configures EarlierResults.
type EarlierOption func(*EarlierResults)

// WithEarlierIdle sets how long a scan waits for another question before
// it stops (default 30s).
func WithEarlierIdle(d time.Duration) EarlierOption {
	return func(e *EarlierResults) {
		if d > 0 {
			e.idle = d
		}
	}
}

// WithEarlierMaxIDs bounds the message IDs one scan keeps (default
// DefaultEarlierMaxIDs). At the bound the scan still answers the questions
// it has, and a question asked after that starts a new scan once the
// current one has caught up.
func WithEarlierMaxIDs(n int) EarlierOption {
	return func(e *EarlierResults) {
		if n > 0 {
			e.maxIDs = n
		}
	}
}

// WithEarlierLogger logs the scans' failures to logger.
func WithEarlierLogger(l *slog.Logger) EarlierOption {
	return func(e *EarlierResults) {
		if l != nil {
			e.logger = l
		}
	}
}

// DefaultEarlierMaxIDs bounds the IDs of one scan to about 10 MiB.
const DefaultEarlierMaxIDs = 100_000

// earlierBatch is the number of headers one read of the scan asks for.
const earlierBatch = 256

// maxEmptyReads is how many reads in a row may get nothing while the
// consumer has messages pending before the scan gives up.
const maxEmptyReads = 5

// clockMargin is how much earlier than the request's store time a scan
// starts: the request and result streams may have leaders on servers
// whose clocks differ.
const clockMargin = time.Minute

// windowTTL is how long the stream's duplicate window, once read, is used.
const windowTTL = time.Minute

// NewEarlierResults finds results in stream, among the messages of
// subjects (the result subjects and their per-tenant forms).
func NewEarlierResults(js jetstream.JetStream, stream string, subjects []string, opts ...EarlierOption) *EarlierResults {
	e := &EarlierResults{
		js: js, stream: stream, subjects: subjects,
		idle: 30 * time.Second, maxIDs: DefaultEarlierMaxIDs,
		logger:  slog.New(slog.DiscardHandler),
		asks:    make(chan *earlierAsk),
		stopped: make(chan struct{}),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// earlierAsk is one question to the scan, answered once on done.
type earlierAsk struct {
	id    string
	from  time.Time
	after uint64 // a read numbered above this one answers "not stored"
	seq   uint64
	found bool
	err   error
	done  chan struct{}
}

// Window is the result stream's duplicate window, read from the stream at
// most once a minute.
func (e *EarlierResults) Window(ctx context.Context) (time.Duration, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if !e.windowAt.IsZero() && time.Since(e.windowAt) < windowTTL {
		return e.window, nil
	}
	st, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		return 0, fmt.Errorf("look up stream %s: %w", e.stream, err)
	}
	e.window, e.windowAt = st.CachedInfo().Config.Duplicates, time.Now()
	return e.window, nil
}

// Find returns the stream sequence of the message stored with message ID
// id, looking at the messages stored from about since (a result is stored
// after its request).
func (e *EarlierResults) Find(ctx context.Context, id string, since time.Time) (seq uint64, found bool, err error) {
	a := &earlierAsk{id: id, from: since.Add(-clockMargin), done: make(chan struct{})}
	select {
	case e.asks <- a:
	case <-e.stopped:
		return 0, false, errEarlierStopped
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
	select {
	case <-a.done:
		return a.seq, a.found, a.err
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

// FindStored looks for the result an earlier delivery stored for the
// request message stored at seq in stream at time stored, when that request
// is old enough for the result stream's duplicate window to have forgotten
// it: half the window. A younger one publishes while the window still holds
// a result stored before, and the server drops the second; the half also
// absorbs a difference between this clock and the server's. looked reports
// whether the stream was read. The search holds no worker (park): after an
// outage it may take a while.
func (e *EarlierResults) FindStored(ctx context.Context, stream string, seq uint64, stored time.Time) (resultSeq uint64, found, looked bool, err error) {
	if stored.IsZero() {
		return 0, false, false, nil
	}
	window, err := e.Window(ctx)
	if err != nil {
		return 0, false, false, fmt.Errorf("earlier result: %w", err)
	}
	if time.Since(stored) < window/2 {
		return 0, false, false, nil
	}
	end := park.Wait(ctx)
	defer end()
	resultSeq, found, err = e.Find(ctx, message.ResultMsgID(stream, seq, stored), stored)
	if err != nil {
		return 0, false, false, fmt.Errorf("earlier result: %w", err)
	}
	return resultSeq, found, true, nil
}

// ResultReader reads a stored result: Answers (by a record) and
// EarlierResults (by a search) both do.
type ResultReader interface {
	Result(ctx context.Context, resultSeq uint64) (*message.Result, error)
}

// errEarlierStopped answers the questions asked after Run returned.
var errEarlierStopped = errors.New("earlier results: stopped")

// Result reads the result stored at seq (see Answers.Result).
func (e *EarlierResults) Result(ctx context.Context, seq uint64) (*message.Result, error) {
	return readResult(ctx, e.js, e.stream, seq)
}

// earlierScan is one pass over the stream from a start time.
type earlierScan struct {
	cons    jetstream.Consumer
	start   time.Time
	ids     map[string]uint64 // every ID seen since start, unless full
	full    bool
	waiting map[string][]*earlierAsk
	reads   uint64 // reads made
	consSeq uint64 // consumer sequence of the last message read
	empty   int    // reads in a row that got nothing while messages were pending
}

// Run answers the questions of Find until ctx ends; a question asked
// before Run starts waits for it.
func (e *EarlierResults) Run(ctx context.Context) error {
	defer close(e.stopped)
	var (
		scan *earlierScan
		next []*earlierAsk // questions for the scan after this one
	)
	fail := func(err error) {
		if scan != nil {
			for _, as := range scan.waiting {
				for _, a := range as {
					a.err = err
					close(a.done)
				}
			}
			e.stop(scan)
			scan = nil
		}
		for _, a := range next {
			a.err = err
			close(a.done)
		}
		next = nil
	}
	defer func() { fail(errEarlierStopped) }()
	idle := time.NewTimer(e.idle)
	defer idle.Stop()
	for {
		busy := scan != nil && len(scan.waiting) > 0
		if !busy && len(next) > 0 {
			if scan != nil {
				e.stop(scan)
			}
			scan, next = e.begin(next), nil
			continue
		}
		if !busy {
			// An idle scan keeps its place for a while: questions come in
			// bursts after an outage.
			var idleC <-chan time.Time
			if scan != nil {
				idle.Reset(e.idle)
				idleC = idle.C
			}
			select {
			case <-ctx.Done():
				return nil
			case a := <-e.asks:
				next = e.take(scan, a, next)
			case <-idleC:
				e.stop(scan)
				scan = nil
			}
			continue
		}
		// Take every question already asked before reading on.
		for more := true; more; {
			select {
			case a := <-e.asks:
				next = e.take(scan, a, next)
			case <-ctx.Done():
				return nil
			default:
				more = false
			}
		}
		if err := e.read(scan); err != nil {
			e.logger.Warn("earlier results cannot be read: redelivered requests are processed again", slog.String("stream", e.stream), slog.Any("error", err))
			fail(err)
		}
	}
}

// take joins a question to the running scan when the scan covers it, and
// otherwise keeps it for the next.
func (e *EarlierResults) take(scan *earlierScan, a *earlierAsk, next []*earlierAsk) []*earlierAsk {
	if scan == nil || a.from.Before(scan.start) {
		return append(next, a)
	}
	if seq, ok := scan.ids[a.id]; ok {
		a.seq, a.found = seq, true
		close(a.done)
		return next
	}
	if scan.full {
		return append(next, a)
	}
	a.after = scan.reads
	scan.waiting[a.id] = append(scan.waiting[a.id], a)
	return next
}

// begin starts a scan for asks, from the earliest of their times; asks it
// cannot start get the error.
func (e *EarlierResults) begin(asks []*earlierAsk) *earlierScan {
	start := asks[0].from
	for _, a := range asks[1:] {
		if a.from.Before(start) {
			start = a.from
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := e.js.CreateConsumer(ctx, e.stream, jetstream.ConsumerConfig{
		Description:       "alert-domains: results stored before a redelivery",
		FilterSubjects:    e.subjects,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       true,
		InactiveThreshold: e.idle + time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		err = fmt.Errorf("scan stream %s: %w", e.stream, err)
		e.logger.Warn("earlier results cannot be read: redelivered requests are processed again", slog.String("stream", e.stream), slog.Any("error", err))
		for _, a := range asks {
			a.err = err
			close(a.done)
		}
		return nil
	}
	scan := &earlierScan{cons: cons, start: start, ids: make(map[string]uint64), waiting: make(map[string][]*earlierAsk)}
	for _, a := range asks {
		a.after = 0
		scan.waiting[a.id] = append(scan.waiting[a.id], a)
	}
	return scan
}

// read reads the next headers of the scan and answers the questions they
// settle: an ID seen answers "stored"; a read issued after a question that
// finds the stream's end answers it "not stored".
func (e *EarlierResults) read(scan *earlierScan) error {
	scan.reads++
	batch, err := scan.cons.FetchNoWait(earlierBatch)
	if err != nil {
		return fmt.Errorf("scan stream %s: %w", e.stream, err)
	}
	n, pending := 0, uint64(0)
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("scan stream %s: %w", e.stream, err)
		}
		// The consumer takes no acknowledgements: a message lost on the
		// way would leave a gap in its sequence, and an ID unseen.
		if md.Sequence.Consumer != scan.consSeq+1 {
			return fmt.Errorf("scan stream %s: message %d missed", e.stream, scan.consSeq+1)
		}
		scan.consSeq = md.Sequence.Consumer
		n, pending = n+1, md.NumPending
		id := m.Headers().Get(nats.MsgIdHdr)
		if id == "" {
			continue
		}
		for _, a := range scan.waiting[id] {
			a.seq, a.found = md.Sequence.Stream, true
			close(a.done)
		}
		delete(scan.waiting, id)
		if !scan.full {
			if len(scan.ids) >= e.maxIDs {
				scan.full = true
				scan.ids = nil
			} else {
				scan.ids[id] = md.Sequence.Stream
			}
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("scan stream %s: %w", e.stream, err)
	}
	caught := n > 0 && pending == 0
	if n > 0 {
		scan.empty = 0
	} else {
		// An empty read is also what a server that did not answer within
		// the client's second looks like: the consumer says which.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := scan.cons.Info(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("scan stream %s: %w", e.stream, err)
		}
		if info.Delivered.Consumer != scan.consSeq {
			return fmt.Errorf("scan stream %s: %d messages sent, %d read", e.stream, info.Delivered.Consumer, scan.consSeq)
		}
		if caught = info.NumPending == 0; !caught {
			if scan.empty++; scan.empty >= maxEmptyReads {
				return fmt.Errorf("scan stream %s: %d messages pending and none sent", e.stream, info.NumPending)
			}
		}
	}
	if !caught {
		return nil
	}
	for id, as := range scan.waiting {
		kept := as[:0]
		for _, a := range as {
			if a.after < scan.reads {
				close(a.done)
			} else {
				kept = append(kept, a)
			}
		}
		if len(kept) == 0 {
			delete(scan.waiting, id)
		} else {
			scan.waiting[id] = kept
		}
	}
	return nil
}

// stop deletes the scan's consumer; the server also removes it once
// inactive.
func (e *EarlierResults) stop(scan *earlierScan) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.js.DeleteConsumer(ctx, e.stream, scan.cons.CachedInfo().Name)
}
