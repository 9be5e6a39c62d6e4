// Package testenv runs what end-to-end tests and benchmarks need: nats-server
// processes, in-process JetStream, the alert-domains binary and other child
// processes. Every helper fails through its [testing.TB] and releases what it
// started at cleanup.
package testenv
