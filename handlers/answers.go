package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/message"
)

// Answers remembers which request messages have their result stored, for as
// long as the requests are stored. The result stream's duplicate window
// drops a result published twice only within the window; a request
// redelivered after a longer outage (its first delivery stored the result
// and crashed before the acknowledgement) is recognised by its record.
type Answers interface {
	// Find returns the result stream sequence of the result of the request
	// key names, when it has one.
	Find(ctx context.Context, key string) (resultSeq uint64, ok bool, err error)
	// Record notes that the result of the request key names is stored at
	// resultSeq.
	Record(ctx context.Context, key string, resultSeq uint64) error
	// Result reads the result stored at resultSeq; ErrResultGone when the
	// result stream no longer holds it.
	Result(ctx context.Context, resultSeq uint64) (*message.Result, error)
}

// ErrResultGone is returned by Answers.Result for a result the result stream
// no longer holds.
var ErrResultGone = errors.New("result no longer stored")

// KVAnswers keeps the records in a JetStream key-value bucket whose TTL is
// the request stream's retention: the key names the request message, the
// value is the sequence of its result in the result stream.
type KVAnswers struct {
	kv      jetstream.KeyValue
	js      jetstream.JetStream
	results string
}

// NewKVAnswers returns the records in kv, for results stored in the stream
// named results.
func NewKVAnswers(kv jetstream.KeyValue, js jetstream.JetStream, results string) *KVAnswers {
	return &KVAnswers{kv: kv, js: js, results: results}
}

// Find implements Answers.
func (a *KVAnswers) Find(ctx context.Context, key string) (uint64, bool, error) {
	e, err := a.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the record of request %s: %w", key, err)
	}
	seq, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("record of request %s: %w", key, err)
	}
	return seq, true, nil
}

// Record implements Answers.
func (a *KVAnswers) Record(ctx context.Context, key string, resultSeq uint64) error {
	if _, err := a.kv.Put(ctx, key, []byte(strconv.FormatUint(resultSeq, 10))); err != nil {
		return fmt.Errorf("record the result of request %s: %w", key, err)
	}
	return nil
}

// Result implements Answers.
func (a *KVAnswers) Result(ctx context.Context, resultSeq uint64) (*message.Result, error) {
	return readResult(ctx, a.js, a.results, resultSeq)
}

// readResult reads the result stored at resultSeq in stream results;
// ErrResultGone when the stream no longer holds it.
func readResult(ctx context.Context, js jetstream.JetStream, results string, resultSeq uint64) (*message.Result, error) {
	st, err := js.Stream(ctx, results)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", results, err)
	}
	m, err := st.GetMsg(ctx, resultSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrResultGone
	}
	if err != nil {
		return nil, fmt.Errorf("read result %d: %w", resultSeq, err)
	}
	var r message.Result
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("result %d is not a result: %w", resultSeq, err)
	}
	return &r, nil
}
