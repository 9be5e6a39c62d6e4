// Package message is the wire contract of the service: what a request
// message may hold and how it is decoded (Request, Decode,
// ValidateAlertID), what a result message holds and how it is built
// (Result, Success, Failure, Result.Message), why a request failed (Kind,
// Error, KindOf), the headers both carry, the message IDs that make one
// result per request (ResultMsgID, ReplayOf), and what makes a stored
// result believed as the service's (Subjects.Believe).
package message
