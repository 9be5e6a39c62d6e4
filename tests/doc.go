// Package tests holds the end-to-end tests of alert-domains: the real binary
// as a process, a real nats-server, and the Defender + Entra ID emulator over
// loopback TLS.
package tests
