// Package ops is the operator tooling behind the replay, tail and status
// commands: reading the streams (ScanStream), planning and republishing
// requests (Replay), following results (Tail) and reading the state of a
// deployment (ReadStatus, ReadReplicas). It reads and publishes; what is
// shown, and how, is the command's.
package ops
