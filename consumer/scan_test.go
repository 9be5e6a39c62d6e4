package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// scanStream is a stream LOG of the subjects log.a and log.b.
func scanStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, url := testenv.EmbeddedJetStream(t)
	_, js := testenv.Connect(t, url)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LOG", Subjects: []string{"log.a", "log.b"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

func publish(t *testing.T, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	for i := range n {
		if _, err := js.Publish(t.Context(), subject, fmt.Appendf(nil, "%s-%d", subject, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// scanned runs Scan with occ and returns the stream sequences read; each
// call publishes one more message on extra, when set, as a caller that
// writes while it reads.
func scanned(t *testing.T, js jetstream.JetStream, occ jetstream.OrderedConsumerConfig, extra string, stopAt uint64) ([]uint64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var seqs []uint64
	err := consumer.Scan(ctx, js, "LOG", occ, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		seqs = append(seqs, meta.Sequence.Stream)
		if extra != "" {
			if _, err := js.Publish(ctx, extra, []byte("later")); err != nil {
				return false, err
			}
		}
		return meta.Sequence.Stream != stopAt, nil
	})
	return seqs, err
}

func TestScan(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, js jetstream.JetStream)
		occ     jetstream.OrderedConsumerConfig
		extra   string // a subject the reader writes to while it reads
		stopAt  uint64
		want    []uint64
	}{
		{name: "every message", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 3) },
			want: []uint64{1, 2, 3}},
		{name: "stops at the last message as of the start", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 3) },
			extra: "log.a", want: []uint64{1, 2, 3}},
		{name: "stops at the last as of the start, which is not of the filter",
			prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 2); publish(t, js, "log.b", 1) },
			occ:     jetstream.OrderedConsumerConfig{FilterSubjects: []string{"log.a"}}, extra: "log.a", want: []uint64{1, 2}},
		{name: "empty stream", want: nil},
		{name: "filter with no match", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.b", 3) },
			occ: jetstream.OrderedConsumerConfig{FilterSubjects: []string{"log.a"}}, extra: "log.a", want: nil},
		{name: "from a sequence", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 4) },
			occ:  jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 3},
			want: []uint64{3, 4}},
		{name: "from a sequence past the end", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 2) },
			occ:  jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 3},
			want: nil},
		{name: "from a time past the end", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 2) },
			occ:  jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: ptr(time.Now().Add(time.Hour))},
			want: nil},
		{name: "a purged stream", prepare: func(t *testing.T, js jetstream.JetStream) {
			publish(t, js, "log.a", 2)
			s, err := js.Stream(t.Context(), "LOG")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, extra: "log.a", want: nil},
		{name: "the reader stops", prepare: func(t *testing.T, js jetstream.JetStream) { publish(t, js, "log.a", 4) },
			stopAt: 2, want: []uint64{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := scanStream(t)
			if tt.prepare != nil {
				tt.prepare(t, js)
			}
			got, err := scanned(t, js, tt.occ, tt.extra, tt.stopAt)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Scan read %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestScanErrors(t *testing.T) {
	js := scanStream(t)
	publish(t, js, "log.a", 2)
	if err := consumer.Scan(t.Context(), js, "MISSING", jetstream.OrderedConsumerConfig{}, nil); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Scan of a missing stream: %v, want ErrStreamNotFound", err)
	}
	stop := errors.New("reader failed")
	calls := 0
	err := consumer.Scan(t.Context(), js, "LOG", jetstream.OrderedConsumerConfig{}, func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error) {
		calls++
		return true, stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan returned %v after %d calls, want the reader's error after one", err, calls)
	}
}

// TestReader: a Reader follows the stream in order, new messages too, and
// says how far the server has sent it; its wait ends with its context.
func TestReader(t *testing.T) {
	js := scanStream(t)
	publish(t, js, "log.a", 2)
	r, err := consumer.Open(t.Context(), js, "LOG", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"log.a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	next := func() uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, meta, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return meta.Sequence.Stream
	}
	if a, b := next(), next(); a != 1 || b != 2 {
		t.Fatalf("read %d, %d; want 1, 2", a, b)
	}
	publish(t, js, "log.b", 1)
	publish(t, js, "log.a", 1)
	if got := next(); got != 4 {
		t.Errorf("read %d, want 4 (the new message of the filter)", got)
	}
	info, err := r.Info(t.Context())
	if err != nil || info.NumPending != 0 || info.Delivered.Consumer != 3 {
		t.Errorf("Info = %+v, %v; want nothing pending, 3 sent", info, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := r.Next(ctx); err == nil {
		t.Error("Next returned a message with nothing to read and its context ended")
	}
}

// TestReaderNextEndsWithItsContextAfterTheStreamIsGone: an ordered
// consumer whose stream is deleted tries to create itself again until
// stopped; Next still returns once its context ends.
func TestReaderNextEndsWithItsContextAfterTheStreamIsGone(t *testing.T) {
	js := scanStream(t)
	publish(t, js, "log.a", 1)
	r, err := consumer.Open(t.Context(), js, "LOG", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if _, _, err := r.Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "LOG"); err != nil {
		t.Fatal(err)
	}
	// The context outlives the deletion's notice, so that Next is in the
	// consumer's attempts to create itself again when it ends.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Next(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Next returned a message of a deleted stream")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Next did not return after its context ended")
	}
}
