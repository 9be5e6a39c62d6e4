package message

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// ResultMsgID is the Nats-Msg-Id of the result of the request stored at seq
// in stream at time stored: the same for every delivery of that request
// message (and for the safety net's answer to it), so the result stream
// drops a result published twice.
func ResultMsgID(stream string, seq uint64, stored time.Time) string {
	id := "result-" + stream + "-" + strconv.FormatUint(seq, 10)
	if !stored.IsZero() {
		id += "-" + strconv.FormatInt(stored.UnixNano(), 10)
	}
	return id
}

// ReplayOf is the request stream sequence a replayed request copies, from
// its Replay-Of header: 0 for an original request, a nil header, or a value
// that is not a decimal sequence.
func ReplayOf(h nats.Header) uint64 {
	if h == nil {
		return 0
	}
	n, err := strconv.ParseUint(h.Get(HeaderReplayOf), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
