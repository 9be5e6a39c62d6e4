package tests

import (
	"log/slog"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// TestOutageLongerThanDuplicateWindowWithoutHooks: without hooks no record
// of a stored result is written. A replica fetched requests, stored the
// results of some of them and stopped before acknowledging any; the
// service starts only after the result stream's duplicate window and the
// acknowledgement wait have passed. Each request with a stored result is
// acknowledged with it, without a second result and without a Defender
// call; the one whose result was never stored gets it.
func TestOutageLongerThanDuplicateWindowWithoutHooks(t *testing.T) {
	t.Parallel()
	const answered, ackWait = 5, time.Second
	ids, hosts := knownAlerts("longgap", answered+1)
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: hosts})
	srv := testenv.StartNATS(t)
	js := srv.JetStream(t)
	env := serviceEnv(emu, cert, srv.URL(), "PROVISION=false", "ACK_WAIT=1s", "MAX_DELIVER=5")
	_, topo := provisioned(t, env)
	if err := topo.Provision(t.Context(), js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	forget := shortResultWindow(t, js)
	seqs := publishAll(t, js, ids)

	// The crashed replica: it fetches every request through the service's
	// consumer, stores the results of the first ones under the message ID
	// the service uses, and acknowledges nothing.
	c, err := js.Consumer(t.Context(), requestStream, consumerName)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(len(ids))
	if err != nil {
		t.Fatal(err)
	}
	fetched := time.Now()
	var got int
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		got++
		alert := string(m.Data())
		if alert == ids[answered] {
			continue // crashed before its result was stored
		}
		res := message.Success(alert, hosts[alert], 1, false, time.Now())
		res.RequestSequence, res.Delivery = md.Sequence.Stream, md.NumDelivered
		msg, err := res.Message(successSubject, message.ResultMsgID(requestStream, md.Sequence.Stream, md.Timestamp), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Error(); err != nil || got != len(ids) {
		t.Fatalf("the crashed replica fetched %d of %d requests (%v)", got, len(ids), err)
	}
	forget()
	testenv.Eventually(t, time.Minute, 20*time.Millisecond, func() bool { return time.Since(fetched) > ackWait },
		"the acknowledgement wait to pass")

	testenv.StartServe(t, env)
	requestsAllAcked(t, js, 60*time.Second)
	rs := waitResults(t, js, len(ids), 30*time.Second)
	for i, seq := range seqs {
		r, ok := rs[seq]
		if !ok || r.Status != "success" || r.AlertID != ids[i] {
			t.Errorf("request %d (%s): %+v", seq, ids[i], r.Raw)
		}
	}
	for _, id := range ids[:answered] {
		if n := emu.CallsFor(id); n != 0 {
			t.Errorf("alert %s: %d Defender calls after its result was stored", id, n)
		}
	}
	if n := emu.CallsFor(ids[answered]); n != 1 {
		t.Errorf("alert %s, never answered: %d Defender calls, want 1", ids[answered], n)
	}
}
