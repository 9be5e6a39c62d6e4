package ops

import (
	"testing"
	"time"
)

// TestPresenceAnswersOnlyInboxes: a question whose reply subject is not an
// inbox (a result subject, a JetStream API call) gets no answer there: the
// service's user may publish on both.
func TestPresenceAnswersOnlyInboxes(t *testing.T) {
	e := newTestEnv(t, nil)
	stop, err := ServePresence(e.nc, e.cfg, time.Now(), func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	spy, err := e.nc.SubscribeSync(e.cfg.SuccessSubject + ".contoso")
	if err == nil {
		err = e.nc.PublishRequest(presenceSubject(e.cfg), e.cfg.SuccessSubject+".contoso", nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Questions are answered in order: once the inbox's is, the other was handled.
	if replicas, err := ReadReplicas(t.Context(), e.nc, e.cfg); err != nil || len(replicas) != 1 {
		t.Fatalf("ReadReplicas = %v, %v; want one replica", replicas, err)
	}
	if n, _, err := spy.Pending(); err != nil || n != 0 {
		t.Errorf("the replica answered on the result subject: %d messages (%v)", n, err)
	}
}
