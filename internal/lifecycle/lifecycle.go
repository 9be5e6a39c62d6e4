// Package lifecycle runs the parts of a long-running process as one group,
// in the manner of github.com/oklog/run: every actor starts at once, the
// first to return ends the group, and the others are then interrupted.
//
// Unlike oklog/run, the actors stop in order and within one budget. A
// service's parts depend on each other while they stop: in-flight work
// still reads the cache index and spends the quota, and the connection
// must outlive both. Actors are added in layers; the layers stop in the
// reverse order of their addition (like deferred calls), each after the
// later ones have returned, and the actors of one layer stop together.
// The budget bounds the whole stop, so that it fits in a supervisor's
// grace period (Kubernetes': 30s) even when a part hangs.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// An Actor is one part of the process. Execute runs it until it is done
// or interrupted; Interrupt makes Execute return soon, and must not block.
// Interrupt may be called after Execute has returned, and more than once.
type Actor struct {
	Name      string
	Execute   func() error
	Interrupt func(error)
}

// Func is the Actor named name that runs run with a context its
// interruption cancels. A context.Canceled that run returns after the
// interruption is a normal stop (nil).
func Func(name string, run func(ctx context.Context) error) Actor {
	ctx, cancel := context.WithCancel(context.Background())
	return Actor{
		Name: name,
		Execute: func() error {
			err := run(ctx)
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
		Interrupt: func(error) { cancel() },
	}
}

// Until is the Actor that returns nil when ctx ends: the group stops when
// its caller's context does (a SIGTERM, say).
func Until(name string, ctx context.Context) Actor {
	return Func(name, func(stop context.Context) error {
		select {
		case <-ctx.Done():
		case <-stop.Done():
		}
		return nil
	})
}

// Group is a set of actors run together. The zero Group has no budget and
// logs nothing.
type Group struct {
	// Budget bounds the stop, from the first actor's return until Run
	// returns; actors still running then are left behind (the process is
	// about to exit). Zero: Run waits for every actor.
	Budget time.Duration
	// Logger, when set, is told which actor ended the group, of actors
	// that stopped with an error after it, and of those left behind when
	// the budget ran out.
	Logger *slog.Logger

	layers [][]Actor
}

// Add adds one layer of actors, which stop together: after the layers
// added later, before those added earlier.
func (g *Group) Add(actors ...Actor) {
	if len(actors) > 0 {
		g.layers = append(g.layers, actors)
	}
}

type result struct {
	layer, index int
	err          error
}

// Run starts every actor and waits for the first to return; then it
// interrupts the layers in reverse order, with that actor's error, each
// layer once the later ones have returned, until all have returned or the
// budget is spent. It returns the first actor's error.
func (g *Group) Run() error {
	if len(g.layers) == 0 {
		return nil
	}
	total := 0
	for _, l := range g.layers {
		total += len(l)
	}
	results := make(chan result, total)
	for li, l := range g.layers {
		for ai, a := range l {
			go func() { results <- result{li, ai, a.Execute()} }()
		}
	}

	first := <-results
	if g.Logger != nil {
		attrs := []any{slog.String("part", g.layers[first.layer][first.index].Name)}
		if first.err != nil {
			attrs = append(attrs, slog.Any("error", first.err))
		}
		g.Logger.Info("stopping", attrs...)
	}
	var deadline <-chan time.Time
	if g.Budget > 0 {
		t := time.NewTimer(g.Budget)
		defer t.Stop()
		deadline = t.C
	}
	done := make([][]bool, len(g.layers))
	for li, l := range g.layers {
		done[li] = make([]bool, len(l))
	}
	done[first.layer][first.index] = true
	record := func(r result) {
		done[r.layer][r.index] = true
		if r.err != nil && g.Logger != nil {
			g.Logger.Error("stopped with an error", slog.String("part", g.layers[r.layer][r.index].Name), slog.Any("error", r.err))
		}
	}

	for li := len(g.layers) - 1; li >= 0; li-- {
		for _, a := range g.layers[li] {
			a.Interrupt(first.err)
		}
		for !layerDone(done[li]) {
			select {
			case r := <-results:
				record(r)
			case <-deadline:
				g.abandon(li, done, first.err)
				return first.err
			}
		}
	}
	return first.err
}

// abandon interrupts the layers not yet interrupted (below layer) and
// logs the actors still running when the budget ran out.
func (g *Group) abandon(layer int, done [][]bool, err error) {
	for li := layer - 1; li >= 0; li-- {
		for _, a := range g.layers[li] {
			a.Interrupt(err)
		}
	}
	if g.Logger == nil {
		return
	}
	var left []string
	for li, l := range g.layers {
		for ai, a := range l {
			if !done[li][ai] {
				left = append(left, a.Name)
			}
		}
	}
	g.Logger.Warn("shutdown budget spent, leaving parts running", slog.Duration("budget", g.Budget), slog.Any("parts", left))
}

func layerDone(done []bool) bool {
	for _, d := range done {
		if !d {
			return false
		}
	}
	return true
}
