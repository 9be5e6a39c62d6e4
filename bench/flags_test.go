package bench

import (
	"flag"
	"os"
	"strconv"
	"time"
)

// The workload; flags win over the environment, which wins over the
// defaults. The environment lets `go test ./...` pass them without every
// package having to define the flags.
var (
	benchN        = flag.Int("bench.n", envInt("BENCH_N", 20000), "requests per throughput run (env BENCH_N)")
	benchWorkers  = flag.Int("bench.workers", envInt("BENCH_WORKERS", 64), "baseline workers (env BENCH_WORKERS)")
	benchRate     = flag.Int("bench.rate", envInt("BENCH_RATE", 1000), "requests per second of the latency run (env BENCH_RATE)")
	benchDuration = flag.Duration("bench.duration", envDuration("BENCH_DURATION", 5*time.Second), "length of the latency run (env BENCH_DURATION)")
	benchRounds   = flag.Int("bench.rounds", envInt("BENCH_ROUNDS", 5), "rounds of each run in BenchmarkReport (env BENCH_ROUNDS)")
	benchAPI      = flag.String("bench.api", envString("BENCH_API", "graph"), "the Microsoft API the service and the baseline call: graph or mde (env BENCH_API)")
	benchWrite    = flag.Bool("bench.write", os.Getenv("BENCH_WRITE") != "", "BenchmarkReport (re)writes BENCHMARKS.md at the module root, BenchmarkTenants its \"50 tenants\" figures (env BENCH_WRITE)")
)

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

func envString(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}
