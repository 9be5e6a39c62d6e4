package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alert-domains/alert-domains/internal/lifecycle"
)

// httpServer serves /livez, /readyz and /metrics on its listener.
type httpServer struct {
	srv *http.Server
	ln  net.Listener
}

// listenHTTP listens on HTTP_LISTEN; nil when it is empty.
func (s *service) listenHTTP(ready func() error, metrics http.Handler) (*httpServer, error) {
	if s.cfg.HTTPListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("HTTP_LISTEN %s: %w", s.cfg.HTTPListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", metrics)
	return &httpServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}, nil
}

// httpActor serves h until interrupted; a server that stops on its own is logged and does not stop the service.
func (s *service) httpActor(h *httpServer) lifecycle.Actor {
	return lifecycle.Func("HTTP server", func(ctx context.Context) error {
		if h == nil {
			<-ctx.Done()
			return nil
		}
		s.logger.Info("HTTP endpoints listening", slog.String("addr", h.ln.Addr().String()))
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("HTTP server stopped", slog.Any("error", err))
			}
		}()
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.Background(), httpStopTimeout)
		defer cancel()
		if err := h.srv.Shutdown(stop); err != nil {
			s.logger.Warn("HTTP server did not stop cleanly", slog.Any("error", err))
		}
		<-served
		return nil
	})
}

// announceReady logs (and tells onReady) when the service first becomes ready.
func (s *service) announceReady(ctx context.Context, ready func() error, natsURL string, start time.Time) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for ready() != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	s.logger.Info("ready", slog.String("request_subject", s.cfg.RequestSubject), slog.Duration("startup", time.Since(start)))
	if s.onReady != nil {
		s.onReady(natsURL)
	}
	<-ctx.Done()
	return nil
}
