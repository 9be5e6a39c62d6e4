package connector_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

// DEFENDER_RATE_LIMITS as the service reads it: comma-separated
// count/window limits, each held exactly over any sliding window; "none"
// is no limit.
func ExampleParseLimits() {
	for _, s := range []string{"150/1m", "100/1m,1500/1h", "none", "100 a minute"} {
		limits, err := connector.ParseLimits(s)
		if err != nil {
			fmt.Printf("%q: %v\n", s, err)
			continue
		}
		fmt.Printf("%q: %v\n", s, limits)
	}
	// Output:
	// "150/1m": [150/1m0s]
	// "100/1m,1500/1h": [100/1m0s 1500/1h0m0s]
	// "none": []
	// "100 a minute": "100 a minute" is not count/window (for example 100/1m)
}

// A Limiter counts one process's calls: two may start within the minute,
// a third waits for a slot (here until its context gives up). Each granted
// call releases its slot when it has ended.
func ExampleLimiter() {
	limits, err := connector.ParseLimits("2/1m")
	if err != nil {
		fmt.Println(err)
		return
	}
	l := connector.NewLimiter(limits)
	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		release, _, err := l.Acquire(ctx)
		cancel()
		if err != nil {
			fmt.Printf("call %d: %v\n", i, err)
			continue
		}
		fmt.Printf("call %d: may start\n", i)
		release() // the call has ended
	}
	// Output:
	// call 1: may start
	// call 2: may start
	// call 3: context deadline exceeded
}
