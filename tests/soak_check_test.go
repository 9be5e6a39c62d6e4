package tests

// The fault soak's checker, written from the contract (docs CONTRACT.md:
// "Guarantees", "Scale-out", "Result messages") and not from the service's
// code: it reads the request and result streams with the JetStream client,
// Defender's record of calls, and the load's script of what each request
// must get.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
)

// streamMsg is a message as a stream stored it.
type streamMsg struct {
	Seq     uint64
	Time    time.Time
	Subject string
	Header  nats.Header
	Data    []byte
}

// readStream reads every message of the stream, up to its last one when
// the read began, starting again for up to a minute while the cluster
// answers with errors (a stream between two leaders after a node's
// restart).
func readStream(ctx context.Context, js jetstream.JetStream, name string) ([]streamMsg, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		msgs, err := readStreamOnce(ctx, js, name)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return msgs, err
		}
		if err := sleepUntil(ctx, time.Now().Add(time.Second)); err != nil {
			return nil, err
		}
	}
}

func readStreamOnce(ctx context.Context, js jetstream.JetStream, name string) ([]streamMsg, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	last := info.State.LastSeq
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []streamMsg
	seen := uint64(0)
	for seen < last {
		// A batch ends at its count, or after the wait when the stream
		// has gaps; every batch is read to its end.
		batch, err := c.Fetch(int(min(last-seen, 1000)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			seen = md.Sequence.Stream
			out = append(out, streamMsg{Seq: seen, Time: md.Timestamp, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// contractResult is a result message as the contract defines it.
type contractResult struct {
	Status  string          `json:"status"`
	Tenant  string          `json:"tenant"`
	AlertID string          `json:"alertId"`
	Domains json.RawMessage `json:"domains"`
	Error   *struct {
		Kind string `json:"kind"`
	} `json:"error"`
	CorrelationID   string `json:"correlationId"`
	RequestSequence uint64 `json:"requestSequence"`
}

// soakRegistration is one app registration's Defender: its calls and the
// quota the service must keep.
type soakRegistration struct {
	Name   string
	Calls  []defenderCall
	Limits []connector.Limit
	// Valid are the alert IDs that requests routed to it named validly:
	// no other ID may reach it.
	Valid map[string]bool
}

// soakReport is what the checker found.
type soakReport struct {
	Requests, Results int
	Lost              []uint64
	Duplicated        []uint64 // one entry per extra result
	Details           []string // of each lost or duplicated request
	Wrong             []string
	OverQuota         []string
	Quota             []string
	BadCalls          []string // calls for an ID no valid request named
	Slowest           time.Duration
	SlowestResult     string
	Calls             int
}

func (r *soakReport) failed() bool {
	return len(r.Lost)+len(r.Duplicated)+len(r.Wrong)+len(r.OverQuota)+len(r.BadCalls) > 0
}

// checkSoak reads both streams and compares every stored request's results
// with what the load says it must get.
func checkSoak(ctx context.Context, js jetstream.JetStream, load *soakLoad, regs []soakRegistration) (*soakReport, error) {
	requests, err := readStream(ctx, js, requestStream)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", requestStream, err)
	}
	results, err := readStream(ctx, js, resultStream)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", resultStream, err)
	}
	script := make(map[string]*soakRequest, len(load.Requests))
	for i := range load.Requests {
		script[load.Requests[i].MsgID] = &load.Requests[i]
	}
	rep := &soakReport{Results: len(results)}
	type stored struct {
		msg  streamMsg
		want *soakRequest
	}
	bySeq := map[uint64]stored{}
	for _, m := range requests {
		if m.Subject != requestSubject && !strings.HasPrefix(m.Subject, requestSubject+".") {
			continue // not a request (the stream also keeps advisories)
		}
		rep.Requests++
		want, ok := script[m.Header.Get(nats.MsgIdHdr)]
		if !ok {
			rep.Wrong = append(rep.Wrong, fmt.Sprintf("request %d: not one of the load's (%q)", m.Seq, m.Header.Get(nats.MsgIdHdr)))
			continue
		}
		bySeq[m.Seq] = stored{m, want}
	}
	got := map[uint64][]streamMsg{}
	for _, m := range results {
		var r contractResult
		if err := json.Unmarshal(m.Data, &r); err != nil {
			rep.Wrong = append(rep.Wrong, fmt.Sprintf("result %d is not JSON: %q", m.Seq, m.Data))
			continue
		}
		if _, ok := bySeq[r.RequestSequence]; !ok {
			rep.Wrong = append(rep.Wrong, fmt.Sprintf("result %d names request %d, which is not stored: %s", m.Seq, r.RequestSequence, m.Data))
			continue
		}
		got[r.RequestSequence] = append(got[r.RequestSequence], m)
	}
	for seq, req := range bySeq {
		rep.judge(req.msg, req.want, got[seq])
	}
	slices.Sort(rep.Lost)
	slices.Sort(rep.Duplicated)
	sort.Strings(rep.Details)
	sort.Strings(rep.Wrong)
	for _, reg := range regs {
		rep.checkCalls(reg)
	}
	return rep, nil
}

// judge compares the results rs of the stored request m with what want
// says it must get.
func (rep *soakReport) judge(m streamMsg, want *soakRequest, rs []streamMsg) {
	name := fmt.Sprintf("request %d (%s, %s)", m.Seq, want.MsgID, want.Class)
	switch {
	case len(rs) == 0:
		rep.Lost = append(rep.Lost, m.Seq)
		rep.Details = append(rep.Details, name+": no result")
		return
	case len(rs) > 1:
		d := fmt.Sprintf("%s: %d results:", name, len(rs))
		for i, r := range rs {
			if i > 0 {
				rep.Duplicated = append(rep.Duplicated, m.Seq)
			}
			d += fmt.Sprintf("\n    result %d: %s", r.Seq, r.Data)
		}
		rep.Details = append(rep.Details, d)
	}
	for _, r := range rs {
		if why := wrongResult(r, want.Want); why != "" {
			rep.Wrong = append(rep.Wrong, fmt.Sprintf("%s: %s: %s", name, why, r.Data))
		}
	}
	if d := rs[0].Time.Sub(m.Time); d > rep.Slowest {
		rep.Slowest, rep.SlowestResult = d, string(rs[0].Data)
	}
}

// checkCalls counts reg's calls, notes those for an alert no valid request
// named, and finds the busiest window of each limit.
func (rep *soakReport) checkCalls(reg soakRegistration) {
	times := make([]time.Time, len(reg.Calls))
	for i, c := range reg.Calls {
		times[i] = c.At
		if !reg.Valid[c.Alert] {
			rep.BadCalls = append(rep.BadCalls, fmt.Sprintf("%s: a call for %q", reg.Name, c.Alert))
		}
	}
	rep.Calls += len(times)
	for _, l := range reg.Limits {
		most, at := maxInWindow(times, l.Window)
		line := fmt.Sprintf("%s: at most %d calls in %v (quota %d)", reg.Name, most, l.Window, l.Count)
		rep.Quota = append(rep.Quota, line)
		if most <= l.Count {
			continue
		}
		line += " from " + at.Format("15:04:05.000") + ":"
		for _, c := range reg.Calls {
			if !c.At.Before(at) && c.At.Before(at.Add(l.Window)) {
				line += fmt.Sprintf("\n    %s %s %d", c.At.Format("15:04:05.000"), c.Alert, c.Status)
			}
		}
		rep.OverQuota = append(rep.OverQuota, line)
	}
}

// wrongResult says how the result m differs from want, or "".
func wrongResult(m streamMsg, want soakOutcome) string {
	var r contractResult
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return err.Error()
	}
	kind := ""
	if r.Error != nil {
		kind = r.Error.Kind
	}
	switch {
	case m.Header.Get(nats.MsgIdHdr) == "":
		return "no Nats-Msg-Id header, which the contract's results carry"
	case m.Header.Get("Result-Status") != r.Status:
		return fmt.Sprintf("a Result-Status header %q on a %s result", m.Header.Get("Result-Status"), r.Status)
	case r.Status != want.Status || kind != want.Kind:
		return fmt.Sprintf("%s %s, want %s %s", r.Status, kind, want.Status, want.Kind)
	case want.AlertID != "" && r.AlertID != want.AlertID:
		return fmt.Sprintf("alert %q, want %q", r.AlertID, want.AlertID)
	case want.Tenant != "" && r.Tenant != want.Tenant:
		return fmt.Sprintf("tenant %q, want %q", r.Tenant, want.Tenant)
	case want.Subject != "" && m.Subject != want.Subject:
		return fmt.Sprintf("on %s, want %s", m.Subject, want.Subject)
	case want.Status == "failure" && !strings.HasPrefix(m.Subject, failureSubject):
		return fmt.Sprintf("a failure on %s", m.Subject)
	case want.Correlation != "" && r.CorrelationID != want.Correlation:
		return fmt.Sprintf("correlation %q, want %q", r.CorrelationID, want.Correlation)
	}
	if want.Status == "success" {
		var domains []string
		if err := json.Unmarshal(r.Domains, &domains); err != nil || domains == nil {
			return fmt.Sprintf("domains %s, want a list", r.Domains)
		}
		if !slices.Equal(domains, want.Domains) {
			return fmt.Sprintf("domains %q, want %q", domains, want.Domains)
		}
	}
	return ""
}

// log prints the report; with max > 0, at most max entries of each list.
func (r *soakReport) log(t *testing.T, max int) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d, results %d, lost %d, duplicated %d, wrong %d, calls for invalid IDs %d\n",
		r.Requests, r.Results, len(r.Lost), len(r.Duplicated), len(r.Wrong), len(r.BadCalls))
	fmt.Fprintf(&b, "Defender calls %d; %s\n", r.Calls, strings.Join(r.Quota, "; "))
	fmt.Fprintf(&b, "slowest request %v: %s\n", r.Slowest.Round(time.Millisecond), r.SlowestResult)
	list := func(name string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s:\n", name)
		for i, s := range items {
			if max > 0 && i == max {
				fmt.Fprintf(&b, "  … %d more\n", len(items)-max)
				break
			}
			fmt.Fprintf(&b, "  %s\n", s)
		}
	}
	seqs := func(s []uint64) []string {
		out := make([]string, len(s))
		for i, v := range s {
			out[i] = fmt.Sprint(v)
		}
		return []string{strings.Join(out, " ")}
	}
	if len(r.Lost) > 0 {
		list("lost (request sequences)", seqs(r.Lost))
	}
	if len(r.Duplicated) > 0 {
		list("duplicated (request sequences)", seqs(r.Duplicated))
	}
	list("lost and duplicated", r.Details)
	list("wrong", r.Wrong)
	list("over the quota", r.OverQuota)
	list("calls for invalid IDs", r.BadCalls)
	t.Log(b.String())
}
