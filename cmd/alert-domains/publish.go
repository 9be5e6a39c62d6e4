package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/message"
)

func runPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "publish", "publish [flags] ID... | -\n\nPublishes one request per alert ID (arguments, or one per line on stdin with -)\nto REQUEST_SUBJECT and prints each one's stream sequence.")
	asJSON := fs.Bool("json", false, `send {"alertId": ID} instead of the plain ID`)
	correlation := fs.String("correlation-id", "", "Correlation-Id header of every request")
	dedup := fs.Bool("dedup", false, "set Nats-Msg-Id to the alert ID, so the stream drops repeats within its duplicate window")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErrorf("publish: give alert IDs, or - to read them from stdin")
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	js, closeConn, err := connectClient(ctx, e, cfg, "publish")
	if err != nil {
		return err
	}
	defer closeConn()
	p := &publisher{js: js, subject: cfg.RequestSubject, json: *asJSON, correlation: *correlation, dedup: *dedup, out: e.stdout}
	if fs.NArg() == 1 && fs.Arg(0) == "-" {
		return p.fromReader(ctx, e.stdin)
	}
	for _, id := range fs.Args() {
		if err := p.publish(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

type publisher struct {
	js          jetstream.JetStream
	subject     string
	json        bool
	correlation string
	dedup       bool
	out         io.Writer
}

func (p *publisher) fromReader(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), message.MaxRequestBytes+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := p.publish(ctx, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (p *publisher) publish(ctx context.Context, id string) error {
	body := []byte(id)
	if p.json {
		var err error
		if body, err = json.Marshal(map[string]string{"alertId": id}); err != nil {
			return err
		}
	}
	msg := &nats.Msg{Subject: p.subject, Data: body, Header: nats.Header{}}
	if p.correlation != "" {
		msg.Header.Set(message.HeaderCorrelationID, p.correlation)
	}
	if p.dedup {
		msg.Header.Set(message.HeaderMsgID, id)
	}
	ack, err := p.js.PublishMsg(ctx, msg)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no stream stores %s: start 'alert-domains serve' once with PROVISION=true to create it: %w", p.subject, err)
	}
	if err != nil {
		return fmt.Errorf("publish %q: %w", id, err)
	}
	dup := ""
	if ack.Duplicate {
		dup = "\tduplicate"
	}
	_, err = fmt.Fprintf(p.out, "%d\t%s%s\n", ack.Sequence, id, dup)
	return err
}
