package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// blocker is an actor that runs until interrupted; interrupted is closed
// at its interruption, returned just before Execute returns.
type blocker struct {
	name        string
	interrupted chan struct{}
	returned    chan struct{}
	release     chan struct{} // nil: return at once when interrupted
	once        sync.Once
}

func newBlocker(name string) *blocker {
	return &blocker{name: name, interrupted: make(chan struct{}), returned: make(chan struct{})}
}

func (b *blocker) actor() Actor {
	return Actor{
		Name: b.name,
		Execute: func() error {
			<-b.interrupted
			if b.release != nil {
				<-b.release
			}
			close(b.returned)
			return nil
		},
		Interrupt: func(error) { b.once.Do(func() { close(b.interrupted) }) },
	}
}

// runAsync runs g and returns its result channel.
func runAsync(g *Group) chan error {
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	return done
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not within 5s", what)
	}
}

func TestFirstReturnStopsAllWithItsError(t *testing.T) {
	boom := errors.New("boom")
	a, b := newBlocker("a"), newBlocker("b")
	var g Group
	var got error
	g.Add(a.actor())
	g.Add(Actor{Name: "fails", Execute: func() error { return boom }, Interrupt: func(err error) { got = err }}, b.actor())
	done := runAsync(&g)
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want %v", err, boom)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after an actor failed")
	}
	wait(t, a.returned, "a")
	wait(t, b.returned, "b")
	if !errors.Is(got, boom) {
		t.Errorf("interrupted with %v, want the first actor's error", got)
	}
}

// TestLayersStopInReverseOrder: an earlier layer is interrupted only once
// every actor of the later layers has returned, as in-flight work needs
// the cache and the connection until it is done.
func TestLayersStopInReverseOrder(t *testing.T) {
	conn, work := newBlocker("connection"), newBlocker("work")
	work.release = make(chan struct{})
	stop, cancel := context.WithCancel(context.Background())
	var g Group
	g.Add(conn.actor())
	g.Add(work.actor())
	g.Add(Until("signal", stop))
	done := runAsync(&g)
	cancel()
	wait(t, work.interrupted, "work interrupted")
	select {
	case <-conn.interrupted:
		t.Fatal("the connection was interrupted while work was still finishing")
	case <-time.After(100 * time.Millisecond):
	}
	close(work.release)
	wait(t, conn.interrupted, "connection interrupted after work returned")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil (a stop, not a failure)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestOneLayerStopsTogether: the actors of one layer are all interrupted
// before any is waited for, so that their stops overlap.
func TestOneLayerStopsTogether(t *testing.T) {
	x, y := newBlocker("consumer"), newBlocker("safety net")
	x.release = y.interrupted // x returns only once y is interrupted
	stop, cancel := context.WithCancel(context.Background())
	var g Group
	g.Add(x.actor(), y.actor())
	g.Add(Until("signal", stop))
	done := runAsync(&g)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the layer's actors were stopped one after the other")
	}
}

// TestBudgetBoundsTheStop: an actor that ignores its interruption cannot
// hold the stop beyond the budget; the earlier layers are still
// interrupted, and the log names the actor left behind.
func TestBudgetBoundsTheStop(t *testing.T) {
	var logs bytes.Buffer
	stuck := newBlocker("hook")
	stuck.release = make(chan struct{})
	defer close(stuck.release)
	conn := newBlocker("connection")
	stop, cancel := context.WithCancel(context.Background())
	g := Group{Budget: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	g.Add(conn.actor())
	g.Add(stuck.actor())
	g.Add(Until("signal", stop))
	done := runAsync(&g)
	cancel()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run waited beyond its budget")
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("stop took %v, want about the budget (200ms)", took)
	}
	wait(t, conn.interrupted, "earlier layer interrupted after the budget")
	if !strings.Contains(logs.String(), "shutdown budget spent") || !strings.Contains(logs.String(), "hook") {
		t.Errorf("no line naming the actor left behind:\n%s", logs.String())
	}
}

func TestLaterErrorsAreLogged(t *testing.T) {
	var logs bytes.Buffer
	stop, cancel := context.WithCancel(context.Background())
	g := Group{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	g.Add(Func("safety net", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("could not go on")
	}))
	g.Add(Until("signal", stop))
	cancel()
	if err := g.Run(); err != nil {
		t.Fatalf("Run = %v, want the first actor's nil", err)
	}
	if !strings.Contains(logs.String(), "safety net") || !strings.Contains(logs.String(), "could not go on") {
		t.Errorf("the later error is not logged:\n%s", logs.String())
	}
}

func TestFuncCancelledIsNil(t *testing.T) {
	a := Func("cache", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	a.Interrupt(nil)
	a.Interrupt(nil) // twice is harmless
	if err := a.Execute(); err != nil {
		t.Errorf("Execute after interruption = %v, want nil", err)
	}
	b := Func("quota", func(ctx context.Context) error { return context.Canceled })
	if err := b.Execute(); !errors.Is(err, context.Canceled) {
		t.Errorf("Execute = %v, want a cancellation not caused by the interruption kept", err)
	}
}

func TestEmptyGroup(t *testing.T) {
	var g Group
	g.Add()
	if err := g.Run(); err != nil {
		t.Fatal(err)
	}
}
