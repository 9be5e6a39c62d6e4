// Package broker connects the service to NATS, external or embedded, and
// keeps the streams and consumers in the shape the service needs.
package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/internal/redact"
)

// Connect dials cfg.NATSURL (or serverURL, when not empty); the connection
// reconnects forever and logs each disconnect and reconnect.
func Connect(ctx context.Context, cfg *config.Config, serverURL, name string, logger *slog.Logger) (*nats.Conn, error) {
	opts, err := options(cfg, name, logger)
	if err != nil {
		return nil, err
	}
	serverURL = cmp.Or(serverURL, cfg.NATSURL)
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(serverURL, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", redact.Servers(serverURL), r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact.Servers(serverURL), ctx.Err())
	}
}

func options(cfg *config.Config, name string, logger *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.Timeout(5 * time.Second),
		nats.ReconnectBufSize(8 << 20),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := min(250*time.Millisecond<<min(attempts, 5), 5*time.Second)
			return d/2 + rand.N(d/2+1)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				logger.Warn("disconnected from NATS", slog.Any("error", err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", slog.String("server", redact.URLs(nc.ConnectedUrl())))
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			logger.Warn("NATS error", slog.Any("error", err))
		}),
	}
	if cfg.NATSCredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCredsFile))
	}
	if cfg.NATSNKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: NATS_NKEY_FILE: %v", config.ErrInvalid, err)
		}
		opts = append(opts, o)
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword.Reveal()))
	}
	if cfg.NATSToken != "" {
		opts = append(opts, nats.Token(cfg.NATSToken.Reveal()))
	}
	if cfg.NATSTLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCAFile))
	}
	if cfg.NATSTLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCertFile, cfg.NATSTLSKeyFile))
	}
	return opts, nil
}

// Embedded is a nats-server with JetStream running in this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream that listens on listen
// (host:port; port 0 picks a free one) and stores in storeDir.
func StartEmbedded(listen, storeDir string) (*Embedded, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("%w: NATS_EMBEDDED_LISTEN: %q is not host:port", config.ErrInvalid, listen)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: NATS_EMBEDDED_LISTEN: %q has no valid port", config.ErrInvalid, listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if ln, err := net.Listen("tcp", listen); err != nil {
		// nats-server would wait out its start-up time without saying why.
		return nil, fmt.Errorf("embedded NATS cannot listen on %s: %w (another process, perhaps a serve already running, holds it): set NATS_EMBEDDED_LISTEN to a free address, or NATS_URL to the NATS server to use", listen, err)
	} else {
		ln.Close()
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "alert-domains-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start listening on %s", listen)
	}
	return &Embedded{srv: srv}, nil
}

// URL is where clients connect.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// ErrMissing is wrapped by Verify for a stream or consumer that does not exist.
var ErrMissing = errors.New("missing")
