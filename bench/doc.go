// Package bench measures alert-domains against a baseline on the same
// machine, with a real nats-server process on file storage (see
// internal/testenv) and the Defender emulator (connector/defendertest)
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
//
// Run each once, the figures being custom metrics on its line:
//
//	go test ./bench -run '^$' -bench . -benchtime 1x
//
// Every line also reports cpu-µs/req, the processor time of the processes
// involved per request, which unlike req/s hardly changes when other work
// shares the machine.
//
// The flags -bench.n, -bench.workers, -bench.rate and -bench.duration (or
// BENCH_N, BENCH_WORKERS, BENCH_RATE and BENCH_DURATION in the environment)
// change the workload, for example for a quick run:
//
//	BENCH_N=2000 BENCH_DURATION=1s go test ./bench -run '^$' -bench . -benchtime 1x
//
// Systems are measured from outside, through NATS only: runWorkload and
// runPaced publish requests to a target's request subject and time each
// one until its result is stored on the target's result stream. Measuring
// the service is starting alert-domains serve on the same nats-server and
// emulator and calling them with its subjects (see target).
package bench
