package message

import (
	"maps"
	"slices"

	"github.com/nats-io/nats.go"
)

// W3C trace context headers, as OpenTelemetry's propagators write them.
const (
	HeaderTracestate = "tracestate"
	HeaderBaggage    = "baggage"
)

// HeaderCarrier is a propagation.TextMapCarrier over case-sensitive NATS headers.
type HeaderCarrier nats.Header

// Get returns the first value of key, or "".
func (c HeaderCarrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set replaces the values of key with value.
func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys lists the keys of the headers.
func (c HeaderCarrier) Keys() []string {
	return slices.Collect(maps.Keys(c))
}
