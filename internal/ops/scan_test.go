package ops

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// TestScanStream: the messages a scan reads, oldest first, up to the last
// stored when it started, and where fn stops it.
func TestScanStream(t *testing.T) {
	e := newTestEnv(t, nil)
	// Requests 1..6: odd ones for tenant contoso.
	for i := 1; i <= 6; i++ {
		tenant := ""
		if i%2 == 1 {
			tenant = "contoso"
		}
		e.request(t, tenant, "a"+strconv.Itoa(i), nil)
	}
	plain := e.cfg.RequestSubject
	tests := []struct {
		name string
		occ  jetstream.OrderedConsumerConfig
		stop uint64 // fn returns false at this sequence (0: never)
		want []uint64
	}{
		{"every message", jetstream.OrderedConsumerConfig{}, 0, []uint64{1, 2, 3, 4, 5, 6}},
		{"one subject", jetstream.OrderedConsumerConfig{FilterSubjects: []string{plain}}, 0, []uint64{2, 4, 6}},
		{"from a sequence", jetstream.OrderedConsumerConfig{FilterSubjects: []string{plain + ".contoso"}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 2}, 0, []uint64{3, 5}},
		{"stopped by fn", jetstream.OrderedConsumerConfig{}, 3, []uint64{1, 2, 3}},
		{"past the end", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 7}, 0, nil},
		{"nothing on the subject", jetstream.OrderedConsumerConfig{FilterSubjects: []string{plain + ".fabrikam"}}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := ScanStream(t.Context(), e.js, e.cfg.RequestStream, tt.occ, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
				got = append(got, meta.Sequence.Stream)
				return meta.Sequence.Stream != tt.stop, nil
			})
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("read %v, %v; want %v", got, err, tt.want)
			}
		})
	}

	// What fn publishes to the stream during the scan is not read back.
	var got []uint64
	err := ScanStream(t.Context(), e.js, e.cfg.RequestStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 5}, func(_ jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		got = append(got, meta.Sequence.Stream)
		e.request(t, "", "more", nil)
		return true, nil
	})
	if err != nil || !slices.Equal(got, []uint64{5, 6}) {
		t.Errorf("read %v, %v; want [5 6]", got, err)
	}

	// An empty stream, and one that does not exist.
	if err := ScanStream(t.Context(), e.js, e.cfg.ResultStream, jetstream.OrderedConsumerConfig{}, func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error) {
		t.Error("a message of an empty stream")
		return true, nil
	}); err != nil {
		t.Errorf("empty stream: %v", err)
	}
	if err := ScanStream(t.Context(), e.js, "NOPE", jetstream.OrderedConsumerConfig{}, nil); err == nil {
		t.Error("a stream that does not exist: no error")
	}
}

// TestRecentCalls: a time for each attempt of each result stored since
// from, a result standing for at most maxCallsPerResult calls.
func TestRecentCalls(t *testing.T) {
	e := newTestEnv(t, nil)
	start := time.Now()
	for i, attempts := range []int{2, 0, 1, maxCallsPerResult + 5} {
		r := message.Success("alert_"+strconv.Itoa(i), nil, attempts, false, time.Now())
		if i == 2 {
			r = message.Failure("alert_2", &connector.Error{Kind: message.KindThrottled, Message: "throttled"}, attempts, time.Now())
			r.Tenant = "contoso"
		}
		e.result(t, r, e.request(t, r.Tenant, r.AlertID, nil))
	}
	// Not a result: no calls.
	if _, err := e.js.Publish(t.Context(), e.cfg.FailureSubject, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from time.Time
		want int
	}{
		{"the last hour", start.Add(-time.Hour), 2 + 0 + 1 + maxCallsPerResult},
		{"from now on", time.Now().Add(time.Minute), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			starts, err := RecentCalls(t.Context(), e.js, e.cfg, tt.from)
			if err != nil || len(starts) != tt.want {
				t.Fatalf("%d calls, %v; want %d", len(starts), err, tt.want)
			}
			for _, at := range starts {
				if at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
					t.Errorf("a call at %v, not when its result was stored", at)
				}
			}
		})
	}
}
