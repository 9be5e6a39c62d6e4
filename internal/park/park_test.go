package park

import (
	"context"
	"testing"
)

func TestWait(t *testing.T) {
	Wait(context.Background())() // no parker: nothing happens
	began, ended := 0, 0
	ctx := WithParker(context.Background(), func() func() {
		began++
		return func() { ended++ }
	})
	l := NewLazy(ctx)
	l.End() // not begun: nothing to end
	l.Begin()
	l.Begin()
	if began != 1 || ended != 0 {
		t.Fatalf("began %d ended %d, want 1 0", began, ended)
	}
	l.End()
	l.End()
	if ended != 1 {
		t.Fatalf("ended %d, want 1", ended)
	}
}
