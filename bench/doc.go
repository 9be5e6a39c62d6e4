// Package bench measures alert-domains against a baseline on the same
// machine, with a real nats-server process on file storage (see
// internal/testenv) and the Defender emulator (emulator) answering at once.
// Each benchmark's doc comment says what it measures; BENCHMARKS.md has the
// latest figures of each with its command, and the flags of the workload.
//
// The baseline is the smallest loop with the moving parts of the service and
// none of the product: a JetStream pull consumer on the stream BENCH_REQ, a
// GET of the alert from the emulator over loopback TLS with one bearer
// token, a result published with a message ID to the stream BENCH_RES, then
// an ack; 64 workers.
//
// Systems are measured from outside, through NATS only: runWorkload and
// runPaced publish requests to a target's request subject and time each
// one until its result is stored on the target's result stream. Every line
// also reports cpu-µs/req, the processor time of the processes involved per
// request, which unlike req/s hardly changes when other work shares the
// machine.
package bench
