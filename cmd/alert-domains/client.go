package main

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
)

// clientURL is where client commands connect: NATS_URL, or the embedded
// server that `serve` starts when NATS_URL is empty.
func clientURL(cfg *config.Config) string {
	if cfg.NATSURL != "" {
		return cfg.NATSURL
	}
	return "nats://" + cfg.EmbeddedListen
}

// connectClient connects the client command called command (the server
// lists the connection as "alert-domains <command>") and returns its
// JetStream context; closeConn closes the connection.
func connectClient(ctx context.Context, e *env, cfg *config.Config, command string, opts ...jetstream.JetStreamOpt) (js jetstream.JetStream, closeConn func(), err error) {
	logger := newLogger(cfg, e)
	nc, err := broker.Connect(ctx, cfg, clientURL(cfg), "alert-domains "+command, logger)
	if err != nil {
		return nil, nil, configError(err)
	}
	js, err = jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
