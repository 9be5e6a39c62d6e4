package docs_test

import (
	"context"
	"encoding/json"
	"log"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/message"
)

// The functions publishAlert and followResults are the Go examples of
// integrations.md, word for word (TestIntegrationsSnippetsAreTested checks
// it): a SIEM's publisher and a playbook's subscriber.

// publishAlert publishes one request for alertID and waits until the request
// stream has stored it. Its Nats-Msg-Id makes the stream drop the same alert
// sent again within two minutes (ack.Duplicate is then true).
func publishAlert(ctx context.Context, js jetstream.JetStream, alertID, correlationID string) (*jetstream.PubAck, error) {
	msg := nats.NewMsg("defender.alerts.domains.requests")
	msg.Data = []byte(alertID)
	msg.Header.Set("Correlation-Id", correlationID)
	msg.Header.Set("Nats-Msg-Id", alertID)
	return js.PublishMsg(ctx, msg)
}

// followResults hands every result, success or failure, of every tenant to
// handle, through a durable consumer of its own: results stored while the
// playbook was away are delivered when it comes back. A result is
// acknowledged once handle returns nil; after an error it comes again a
// minute later. It returns when ctx ends.
func followResults(ctx context.Context, js jetstream.JetStream, durable string, handle func(message.Result) error) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, "DEFENDER_ALERT_DOMAIN_RESULTS", jetstream.ConsumerConfig{
		Durable: durable,
		FilterSubjects: []string{
			"defender.alerts.domains.success", "defender.alerts.domains.success.*",
			"defender.alerts.domains.failure", "defender.alerts.domains.failure.*",
		},
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   time.Minute,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var res message.Result
		if err := json.Unmarshal(msg.Data(), &res); err != nil {
			log.Printf("not a result, dropped: %v", msg.Term())
			return
		}
		if err := handle(res); err != nil {
			log.Printf("result of %s kept for later: %v (nak: %v)", res.AlertID, err, msg.NakWithDelay(time.Minute))
			return
		}
		if err := msg.Ack(); err != nil {
			log.Printf("result of %s handled, not acknowledged: %v", res.AlertID, err)
		}
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	<-ctx.Done()
	return nil
}

// TestGoSubscriber runs the examples of integrations.md against the real
// service: a SIEM publishes two alerts with publishAlert, alert-domains
// serve answers them from the emulator, and a playbook receives both
// results through followResults.
func TestGoSubscriber(t *testing.T) {
	t.Parallel()
	_, natsURL := testenv.EmbeddedJetStream(t)
	emu, certFile := testenv.StartEmulator(t, emulator.Config{SeedData: true})
	svc := testenv.StartService(t, testenv.BuildBinary(t), testenv.ServiceEnv(emu, certFile, natsURL), "serve")
	svc.WaitForLine(t, `"msg":"ready"`, time.Minute)
	_, js := testenv.Connect(t, natsURL)

	ctx := t.Context()
	for _, a := range []struct{ id, correlation string }{
		{"da637472900382838869_1364969609", "siem-42"},
		{"da637000000000000000_404404404", "siem-43"},
	} {
		if _, err := publishAlert(ctx, js, a.id, a.correlation); err != nil {
			t.Fatalf("publishAlert(%s): %v", a.id, err)
		}
	}
	again, err := publishAlert(ctx, js, "da637472900382838869_1364969609", "siem-44")
	if err != nil || !again.Duplicate {
		t.Errorf("the same alert again within the window: %+v, %v; want a duplicate", again, err)
	}

	results := make(chan message.Result, 4)
	followCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- followResults(followCtx, js, "soar-playbook", func(r message.Result) error {
			results <- r
			return nil
		})
	}()
	byAlert := map[string]message.Result{}
	timeout := time.After(30 * time.Second)
	for len(byAlert) < 2 {
		select {
		case r := <-results:
			byAlert[r.AlertID] = r
		case err := <-done:
			t.Fatalf("followResults returned early: %v", err)
		case <-timeout:
			t.Fatalf("results within 30s: %+v\nservice output:\n%s", byAlert, svc.Output())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("followResults: %v", err)
	}

	ok := byAlert["da637472900382838869_1364969609"]
	if ok.Status != message.StatusSuccess || !slices.Equal(ok.Domains, []string{"www.example.com", "cdn.example.net"}) || ok.CorrelationID != "siem-42" {
		t.Errorf("success result: %+v", ok)
	}
	missing := byAlert["da637000000000000000_404404404"]
	if missing.Kind() != message.KindNotFound || missing.CorrelationID != "siem-43" {
		t.Errorf("failure result: %+v", missing)
	}
}
