// Package ops is the operator tooling behind the replay, tail, status and
// get commands. It believes only the results the service wrote; what is
// shown, and how, is the command's.
package ops
