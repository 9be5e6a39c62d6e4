package safetynet

import (
	"encoding/json"
	"errors"
	"fmt"
)

// AdvisoryType is the type of the server's max-deliveries advisory.
const AdvisoryType = "io.nats.jetstream.advisory.v1.max_deliver"

// ErrBadAdvisory is wrapped by ParseAdvisory's errors.
var ErrBadAdvisory = errors.New("not a max-deliveries advisory")

// Advisory is the server's notice that a message ran out of deliveries.
type Advisory struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// ParseAdvisory reads a max-deliveries advisory.
func ParseAdvisory(data []byte) (Advisory, error) {
	var a Advisory
	if err := json.Unmarshal(data, &a); err != nil {
		return Advisory{}, fmt.Errorf("%w: %v", ErrBadAdvisory, err)
	}
	if a.Type != "" && a.Type != AdvisoryType {
		return Advisory{}, fmt.Errorf("%w: type %q", ErrBadAdvisory, a.Type)
	}
	if a.Stream == "" || a.Consumer == "" || a.StreamSeq == 0 {
		return Advisory{}, fmt.Errorf("%w: stream, consumer and stream_seq are required", ErrBadAdvisory)
	}
	return a, nil
}
