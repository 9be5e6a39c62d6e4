// Package message is the wire contract: requests, results, failure kinds,
// headers, message IDs and provenance (Subjects.Believe). It holds no behaviour.
package message
