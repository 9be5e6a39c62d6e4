package tests

import (
	"flag"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// endToEndParallel is how many of these tests run at once unless
// -test.parallel says otherwise. Each starts processes of its own and spends
// most of its time waiting for them (on quotas, retries, time-outs and
// restarts), not on the processor, so more of them than the machine has
// cores run at once; the default, GOMAXPROCS, would leave two cores mostly
// idle.
const endToEndParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(endToEndParallel)); err != nil {
			panic(err)
		}
	}
	goleak.VerifyTestMain(m)
}
