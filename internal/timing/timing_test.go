package timing

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(t.Context(), time.Second, nil) || time.Since(start) != time.Second {
			t.Fatalf("Sleep of 1s: returned after %v", time.Since(start))
		}
		wake := make(chan struct{})
		close(wake)
		start = time.Now()
		if !Sleep(t.Context(), time.Hour, wake) || time.Since(start) != 0 {
			t.Fatal("a closed wake did not end the sleep at once")
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if Sleep(ctx, time.Hour, nil) {
			t.Fatal("a cancelled sleep reported that it slept")
		}
	})
}
