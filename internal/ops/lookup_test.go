package ops

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

func newLookupClient(t *testing.T, cfg emulator.Config) *connector.Client {
	t.Helper()
	srv := emulator.NewServer(cfg)
	t.Cleanup(srv.Close)
	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		t.Fatal(err)
	}
	client, err := connector.New(connector.Graph, srv.URL, cred, emulator.GraphScope, connector.WithHTTPClient(srv.Client()),
		connector.WithTimeout(5*time.Second), connector.WithBackoff(10*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// ids yields list, then err (nil: the end).
func ids(list []string, err error) func() (string, bool, error) {
	return func() (string, bool, error) {
		if len(list) == 0 {
			return "", false, err
		}
		id := list[0]
		list = list[1:]
		return id, true, nil
	}
}

// TestLookupAll: every ID once, in input order whatever the workers, with
// the tenant on each result; failures carry the connector's error.
func TestLookupAll(t *testing.T) {
	client := newLookupClient(t, emulator.Config{SeedData: true, Latency: 5 * time.Millisecond})
	const ok, missing, invalid = "da637472900382838869_1364969609", "da000000000000000000_1", "../machines"
	readErr := errors.New("stdin broke")
	tests := []struct {
		name    string
		ids     []string
		end     error
		workers int
		kinds   []message.Kind // "" for a success
		err     error
	}{
		{"one worker", []string{ok, missing, invalid}, nil, 1, []message.Kind{"", message.KindNotFound, message.KindInvalidRequest}, nil},
		{"more workers than IDs", []string{missing, ok, ok, invalid, ok}, nil, 8, []message.Kind{message.KindNotFound, "", "", message.KindInvalidRequest, ""}, nil},
		{"none", nil, nil, 4, nil, nil},
		{"read error after two", []string{ok, missing}, readErr, 2, []message.Kind{"", message.KindNotFound}, readErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Lookup
			err := LookupAll(t.Context(), client, "contoso", ids(tt.ids, tt.end), tt.workers, func(l Lookup) error {
				got = append(got, l)
				return nil
			})
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			var gotIDs []string
			var gotKinds []message.Kind
			for _, l := range got {
				gotIDs = append(gotIDs, l.ID)
				gotKinds = append(gotKinds, l.Result.Kind())
				if l.Result.Tenant != "contoso" || (l.Err == nil) != (l.Result.Error == nil) {
					t.Errorf("%s: result %+v, error %v", l.ID, l.Result, l.Err)
				}
			}
			if !slices.Equal(gotIDs, tt.ids) || !slices.Equal(gotKinds, tt.kinds) {
				t.Errorf("got %v %v, want %v %v", gotIDs, gotKinds, tt.ids, tt.kinds)
			}
		})
	}

	// emit's error stops the run at once.
	stop := errors.New("stdout closed")
	n := 0
	err := LookupAll(t.Context(), client, "", ids([]string{ok, ok, ok}, nil), 2, func(Lookup) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("emit failing: %v after %d calls", err, n)
	}

	// An end of ctx ends the run with its cause, even with IDs left.
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("interrupted")
	endless := func() (string, bool, error) { return ok, true, nil }
	err = LookupAll(ctx, client, "", endless, 2, func(Lookup) error { cancel(cause); return nil })
	if !errors.Is(err, cause) {
		t.Errorf("canceled: %v, want %v", err, cause)
	}

	// It ends the run too while next waits for input that does not come (an open stdin).
	ctx, cancel = context.WithCancelCause(t.Context())
	open := ids([]string{ok}, nil)
	waiting := func() (string, bool, error) {
		if id, more, _ := open(); more {
			return id, true, nil
		}
		<-t.Context().Done()
		return "", false, nil
	}
	done := make(chan error, 1)
	go func() {
		done <- LookupAll(ctx, client, "", waiting, 2, func(Lookup) error { cancel(cause); return nil })
	}()
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Errorf("canceled while waiting for input: %v, want %v", err, cause)
		}
	case <-time.After(10 * time.Second):
		t.Error("canceled while waiting for input: still running after 10s")
	}
}
