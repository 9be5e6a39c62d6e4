// Package lifecycle runs the parts of a process as one group, as
// github.com/oklog/run does, but stops them in layers, in the reverse order
// of their addition, within one budget.
package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"
)

// An Actor is one part of the process. Interrupt makes Execute return soon,
// must not block, and may be called more than once, also after Execute returned.
type Actor struct {
	Name      string
	Execute   func() error
	Interrupt func(error)
}

// Func is the Actor that runs run with a context its interruption cancels;
// the context.Canceled it returns then is nil.
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

// Until is the Actor that returns nil when ctx ends.
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
	Budget time.Duration // bounds the stop; actors running after it are left behind
	Logger *slog.Logger  // optional: told how the group stopped

	layers [][]Actor
}

// Add adds one layer of actors, which stop together.
func (g *Group) Add(actors ...Actor) {
	if len(actors) > 0 {
		g.layers = append(g.layers, actors)
	}
}

type result struct {
	layer, index int
	err          error
}

// Run starts every actor, waits for the first to return, then interrupts
// the layers in reverse order, each once the later ones have returned, and
// returns the first actor's error.
func (g *Group) Run() error {
	if len(g.layers) == 0 {
		return nil
	}
	results := make(chan result, len(slices.Concat(g.layers...)))
	done := make([][]bool, len(g.layers))
	for li, l := range g.layers {
		done[li] = make([]bool, len(l))
		for ai, a := range l {
			go func() { results <- result{li, ai, a.Execute()} }()
		}
	}
	logger := cmp.Or(g.Logger, slog.New(slog.DiscardHandler))
	first := <-results
	done[first.layer][first.index] = true
	attrs := []any{slog.String("part", g.layers[first.layer][first.index].Name)}
	if first.err != nil {
		attrs = append(attrs, slog.Any("error", first.err))
	}
	logger.Info("stopping", attrs...)
	var deadline <-chan time.Time
	if g.Budget > 0 {
		deadline = time.After(g.Budget)
	}
	spent := false
	for li := len(g.layers) - 1; li >= 0; li-- {
		for _, a := range g.layers[li] {
			a.Interrupt(first.err)
		}
		for !spent && slices.Contains(done[li], false) {
			select {
			case r := <-results:
				done[r.layer][r.index] = true
				if r.err != nil {
					logger.Error("stopped with an error", slog.String("part", g.layers[r.layer][r.index].Name), slog.Any("error", r.err))
				}
			case <-deadline:
				spent = true // the layers left are interrupted, not waited for
			}
		}
	}
	if spent {
		var left []string
		for li, l := range g.layers {
			for ai, a := range l {
				if !done[li][ai] {
					left = append(left, a.Name)
				}
			}
		}
		logger.Warn("shutdown budget spent, leaving parts running", slog.Duration("budget", g.Budget), slog.Any("parts", left))
	}
	return first.err
}
