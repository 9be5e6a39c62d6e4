package wait

import (
	"context"
	"testing"
)

func TestLazyBeginsOnce(t *testing.T) {
	Begin(context.Background(), true)() // no waiter: nothing happens
	var began []bool
	ended := 0
	ctx := With(context.Background(), func(abandonable bool) func() {
		began = append(began, abandonable)
		return func() { ended++ }
	})
	l := NewLazy(ctx, true)
	l.End() // not begun: nothing to end
	l.Begin()
	l.Begin()
	if len(began) != 1 || !began[0] || ended != 0 {
		t.Fatalf("began %v ended %d, want one abandonable wait not ended", began, ended)
	}
	l.End()
	l.End()
	if ended != 1 {
		t.Fatalf("ended %d, want 1", ended)
	}
	Begin(ctx, false)()
	if len(began) != 2 || began[1] || ended != 2 {
		t.Fatalf("began %v ended %d after a wait that is not abandonable", began, ended)
	}
}
