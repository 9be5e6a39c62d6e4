// Package testenv provides the moving parts that end-to-end tests and
// benchmarks run against: a real nats-server process built from its Go
// module, an in-process JetStream server, the alert-domains binary, and
// child processes whose output can be waited on.
//
// Every helper takes a [testing.TB], reports setup failures through it, and
// releases what it started with [testing.TB.Cleanup].
package testenv
