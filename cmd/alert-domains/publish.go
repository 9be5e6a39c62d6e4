package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/message"
)

const publishUsage = `publish [flags] ID... | -

Publishes one request per alert ID (arguments, or one per line on stdin with -)
to REQUEST_SUBJECT, or with --tenant NAME to REQUEST_SUBJECT.NAME, and prints
each one's stream sequence.`

func runPublish(ctx context.Context, e *env, args []string) error {
	fs := e.flags("publish")
	asJSON := fs.Bool("json", false, `send {"alertId": ID} instead of the plain ID`)
	correlation := fs.String("correlation-id", "", "Correlation-Id header of every request")
	dedup := fs.Bool("dedup", false, "set Nats-Msg-Id to the alert ID, so the stream drops repeats within its duplicate window")
	tenant := fs.String("tenant", "", "publish to the tenant's subject, REQUEST_SUBJECT.NAME")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := checkTenant("publish", *tenant); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErrorf("publish: give alert IDs, or - to read them from stdin")
	}
	cfg, js, closeConn, err := connectClient(ctx, e, "publish")
	if err != nil {
		return err
	}
	defer closeConn()
	subject := cfg.RequestSubject
	if *tenant != "" {
		subject += "." + *tenant
	}
	next, _ := idReader(e.stdin, fs.Args())
	next = cancelable(ctx, next)
	for {
		id, ok, err := next()
		if err != nil || !ok {
			return err
		}
		id = strings.TrimSpace(id)
		msg := &nats.Msg{Subject: subject, Data: []byte(id), Header: nats.Header{}}
		if *asJSON {
			msg.Data, _ = json.Marshal(map[string]string{"alertId": id})
		}
		if *correlation != "" {
			msg.Header.Set(message.HeaderCorrelationID, *correlation)
		}
		if *dedup {
			msg.Header.Set(message.HeaderMsgID, id)
		}
		ack, err := js.PublishMsg(ctx, msg)
		switch {
		case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("no stream stores %s: start 'alert-domains serve' once with PROVISION=true to create it: %w", subject, err)
		case err != nil:
			return fmt.Errorf("publish %q: %w", id, err)
		case ack.Duplicate:
			_, err = fmt.Fprintf(e.stdout, "%d\t%s\tduplicate\n", ack.Sequence, id)
		default:
			_, err = fmt.Fprintf(e.stdout, "%d\t%s\n", ack.Sequence, id)
		}
		if err != nil {
			return err
		}
	}
}
