package safetynet_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/alert-domains/alert-domains/safetynet"
)

func TestParseAdvisory(t *testing.T) {
	tests := []struct {
		name string
		data string
		want safetynet.Advisory
		err  bool
	}{
		{
			name: "server advisory",
			data: `{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-11-27T09:14:03Z","stream":"S","consumer":"C","stream_seq":42,"deliveries":10}`,
			want: safetynet.Advisory{Type: safetynet.AdvisoryType, ID: "x", Stream: "S", Consumer: "C", StreamSeq: 42, Deliveries: 10},
		},
		{name: "without type", data: `{"stream":"S","consumer":"C","stream_seq":1}`, want: safetynet.Advisory{Stream: "S", Consumer: "C", StreamSeq: 1}},
		{name: "empty", data: ``, err: true},
		{name: "not json", data: `max deliveries`, err: true},
		{name: "other type", data: `{"type":"io.nats.jetstream.advisory.v1.nak","stream":"S","consumer":"C","stream_seq":1}`, err: true},
		{name: "no sequence", data: `{"stream":"S","consumer":"C"}`, err: true},
		{name: "no stream", data: `{"consumer":"C","stream_seq":1}`, err: true},
		{name: "negative sequence", data: `{"stream":"S","consumer":"C","stream_seq":-1}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := safetynet.ParseAdvisory([]byte(tt.data))
			if tt.err {
				if !errors.Is(err, safetynet.ErrBadAdvisory) {
					t.Fatalf("error %v, want ErrBadAdvisory", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAdvisory = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseAdvisory(f *testing.F) {
	f.Add([]byte(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"S","consumer":"C","stream_seq":42,"deliveries":10}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := safetynet.ParseAdvisory(data)
		if err != nil {
			if !errors.Is(err, safetynet.ErrBadAdvisory) {
				t.Fatalf("error %v does not wrap ErrBadAdvisory", err)
			}
			return
		}
		if a.StreamSeq == 0 || a.Stream == "" || a.Consumer == "" {
			t.Fatalf("accepted an advisory without its identity: %+v", a)
		}
	})
}

func ExampleParseAdvisory() {
	a, err := safetynet.ParseAdvisory([]byte(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"DEFENDER_ALERT_DOMAIN_REQUESTS","consumer":"alert-domains","stream_seq":1042,"deliveries":10}`))
	fmt.Println(a.Stream, a.StreamSeq, a.Deliveries, err)
	// Output: DEFENDER_ALERT_DOMAIN_REQUESTS 1042 10 <nil>
}
