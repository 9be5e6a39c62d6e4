// Package ops is the operator tooling behind the replay, tail, status and
// get commands: planning and republishing requests (Replay), following
// results (Tail), reading the state of a deployment (ReadStatus) with the
// replicas that answer (ServePresence, ReadReplicas), the calls recent
// results record (RecentCalls), the failure kinds as an operator meets them
// (Kinds), and looking up alerts in input order (LookupAll). It believes
// only the results the service wrote; what is shown, and how, is the
// command's.
package ops
