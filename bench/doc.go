// Package bench measures alert-domains against a baseline on the same
// machine, with a real nats-server process on file storage (see
// internal/testenv) and the Defender emulator (emulator)
// answering at once.
//
// The baseline is the smallest loop with the moving parts of the service and
// none of the product: a JetStream pull consumer on the stream BENCH_REQ, a
// GET of the alert's domains from the emulator over loopback TLS with one
// bearer token, a result published with a message ID to the stream
// BENCH_RES, then an ack; 64 workers.
//
// The benchmarks:
//   - BenchmarkBaseline: a burst of 20,000 requests; req/s from the first
//     publish to the last result stored, and the latencies of the burst.
//   - BenchmarkBaselineLatency: a steady 1,000 requests/s for 5 s; p50 and
//     p99 request-to-result latency.
//   - BenchmarkCeilingHTTPS, BenchmarkCeilingPublish: one moving part alone
//     (the domains call; the result publish), with the same workers, to show
//     what the machine allows.
//   - BenchmarkService, BenchmarkServiceNoCache, BenchmarkServiceLatency:
//     the same workloads through alert-domains serve (the binary, built
//     without the race detector, on a nats-server process of its own, with
//     the emulator in this process; DEFENDER_RATE_LIMITS=none,
//     CONCURRENCY=64, LOG_LEVEL=warn), with the result cache on (the
//     default) and off (CACHE_TTL=0); they also report its peak RSS.
//   - BenchmarkServiceStartup: process start to the "ready" log line with a
//     running nats-server.
//   - BenchmarkQuotaAcquire: the cost of one acquisition of a quota slot
//     (p50, p99), alone and with 3 processes × 16 callers, for the
//     per-process limiter, the shared quota's streams (package quota) and
//     the design not chosen, a sliding-window log in one key-value entry
//     under compare-and-set.
//   - BenchmarkQuotaUtilisation: 3 alert-domains serve replicas sharing
//     DEFENDER_RATE_LIMITS=20/2s drain 200 requests: calls per window
//     against the limit, the most in any sliding window, the drain time.
//   - BenchmarkCluster: BenchmarkBaseline and BenchmarkService (cache on
//     and off) on one three-node JetStream cluster of nats-server processes
//     (routes on loopback), every stream on three replicas, the service with
//     STREAM_REPLICAS=3; every client connects to the first node, and the
//     throughput rounds (in turns, -bench.rounds) run with every stream and
//     durable consumer led by that node, then by another; the medians of
//     the rates and of the ratios to the baseline, per layout and over
//     both, and the load average of the machine.
//   - BenchmarkReport: all of it in one run, in turns, and the figures as
//     Markdown: req/s of the baseline and the service and their ratio, p50
//     and p99 latency at the steady rate, peak RSS at CONCURRENCY=256 and
//     64, and start-up to ready (median of 5). With -bench.write (or
//     BENCH_WRITE=1) it rewrites the figures at the top of BENCHMARKS.md,
//     keeping the notes below its marker line. It takes about three minutes.
//   - BenchmarkTenants: 50 tenants in one TENANTS_FILE, each with its own
//     app registration, secret and emulator, all with rateLimits 20/2s, one
//     alert-domains serve at CONCURRENCY=16: 49 tenants with a backlog beyond
//     their quota and one sending 5 requests/s. It reports each saturated
//     tenant's calls over 30 s against its quota (target ≥ 0.9), the
//     trickle tenant's p50 and p99 request-to-result latency beside them
//     (target p99 < 50 ms) and alone, and when each backlog drained, as
//     Markdown; with -bench.write it replaces the figures of the section
//     "50 tenants" of BENCHMARKS.md. It takes about two minutes.
//
// The report, as the README gives it:
//
//	go test ./bench -run '^$' -bench '^BenchmarkReport$' -benchtime 1x -timeout 30m -bench.write
//
// Run the others each once, the figures being custom metrics on its line:
//
//	go test ./bench -run '^$' -bench . -benchtime 1x
//
// Every line also reports cpu-µs/req, the processor time of the processes
// involved per request, which unlike req/s hardly changes when other work
// shares the machine.
//
// The flags -bench.n, -bench.workers, -bench.rate, -bench.duration and
// -bench.rounds (or BENCH_N, BENCH_WORKERS, BENCH_RATE, BENCH_DURATION and
// BENCH_ROUNDS in the environment) change the workload, for example for a
// quick run:
//
//	BENCH_N=2000 BENCH_DURATION=1s BENCH_ROUNDS=1 go test ./bench -run '^$' -bench . -benchtime 1x
//
// Systems are measured from outside, through NATS only: runWorkload and
// runPaced publish requests to a target's request subject and time each
// one until its result is stored on the target's result stream. Measuring
// the service is starting alert-domains serve on the same nats-server and
// emulator and calling them with its subjects (see target).
package bench
