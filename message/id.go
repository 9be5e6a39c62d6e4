package message

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// ResultMsgID is the Nats-Msg-Id of the result of a stored request, for every delivery.
func ResultMsgID(stream string, seq uint64, stored time.Time) string {
	id := "result-" + stream + "-" + strconv.FormatUint(seq, 10)
	if !stored.IsZero() {
		id += "-" + strconv.FormatInt(stored.UnixNano(), 10)
	}
	return id
}

// ReplayOf is the sequence in a request's Replay-Of header, or 0.
func ReplayOf(h nats.Header) uint64 {
	n, err := strconv.ParseUint(h.Get(HeaderReplayOf), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
