package shutdown

import (
	"context"
	"testing"
)

func TestAbandonable(t *testing.T) {
	Abandonable(context.Background())() // no watcher: nothing happens

	began, ended := 0, 0
	ctx := WithWatcher(context.Background(), func() func() {
		began++
		return func() { ended++ }
	})
	end := Abandonable(context.WithoutCancel(ctx))
	if began != 1 || ended != 0 {
		t.Fatalf("began %d ended %d, want 1 0", began, ended)
	}
	end()
	if ended != 1 {
		t.Fatalf("ended %d, want 1", ended)
	}
}
