// Package ops is the operator tooling behind the replay, tail, status and
// get commands: reading the streams (ScanStream), planning and republishing
// requests (Replay), following results (Tail), reading the state of a
// deployment (ReadStatus) with the replicas that answer (ServePresence,
// ReadReplicas), and looking up alerts in input order (LookupAll). It reads
// and publishes; what is shown, and how, is the command's.
package ops
