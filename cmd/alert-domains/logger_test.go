package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
)

// TestLoggerDurationsAndURLs: both log formats write durations as Go
// durations and never the credentials of a URL, in a string or an error.
func TestLoggerDurationsAndURLs(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		cfg := &config.Config{Operations: config.Operations{LogFormat: format, Level: slog.LevelInfo}}
		e := &env{lookupEnv: config.MapEnv(nil), stderr: &buf}
		logger := newLogger(cfg, e)
		err := fmt.Errorf("connect: %w", errors.New("dial nats://alice:s3cret@nats:4222 refused"))
		logger.Info("x", slog.Duration("timeout", 25*time.Second), slog.String("url", "https://u:s3cret@host/x"), slog.Any("error", err))
		out := buf.String()
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s: a URL password shows: %s", format, out)
		}
		if !strings.Contains(out, "25s") || strings.Contains(out, "25000000000") {
			t.Errorf("%s: duration not written as 25s: %s", format, out)
		}
		if !strings.Contains(out, "nats://nats:4222") || !strings.Contains(out, "https://host/x") {
			t.Errorf("%s: the URLs themselves are gone: %s", format, out)
		}
	}
}
