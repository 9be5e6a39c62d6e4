package handlers

import (
	"context"
	"log/slog"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

// Logging logs each outcome once, with the attributes operators search by.
func Logging(logger *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) Outcome {
			start := time.Now()
			out := next(ctx, d)
			attrs := []slog.Attr{
				slog.String("alert_id", out.AlertID),
				slog.Uint64("stream_seq", d.StreamSeq),
				slog.Uint64("delivery", d.NumDelivered),
				slog.Int("attempts", out.Attempts),
				slog.Duration("duration", time.Since(start)),
				slog.String("action", out.Action.String()),
			}
			if out.Result != nil && out.Result.Error != nil {
				attrs = append(attrs, slog.String("kind", string(out.Result.Error.Kind)))
				if out.Result.Error.Target != "" {
					attrs = append(attrs, slog.String("defender_target", out.Result.Error.Target))
				}
			}
			if out.Duplicate {
				attrs = append(attrs, slog.Bool("duplicate", true))
			}
			if out.CacheErr != nil {
				logger.LogAttrs(ctx, slog.LevelWarn, "result cache unavailable", slog.String("alert_id", out.AlertID), slog.Any("error", out.CacheErr))
			}
			switch {
			case out.Action == HandBack:
				logger.LogAttrs(ctx, slog.LevelInfo, "request handed back at shutdown", attrs...)
			case out.Action == Retry:
				attrs = append(attrs, slog.Duration("redeliver_in", out.Delay), slog.Any("error", out.Err))
				logger.LogAttrs(ctx, slog.LevelError, "result not stored, request will be redelivered", attrs...)
			case out.Result != nil && out.Result.Status == StatusSuccess:
				if out.Result.Cached != nil && *out.Result.Cached {
					attrs = append(attrs, slog.Bool("cached", true))
				}
				attrs = append(attrs, slog.Int("domains", len(out.Result.Domains)))
				logger.LogAttrs(ctx, slog.LevelInfo, "success result stored", attrs...)
			default:
				if out.Err != nil {
					attrs = append(attrs, slog.Any("error", out.Err))
				}
				logger.LogAttrs(ctx, failureLevel(out.Result.Kind()), "failure result stored", attrs...)
			}
			return out
		}
	}
}

// failureLevel is the log level of a stored failure: warn where an operator
// may have to act (credentials, permissions, outages, quota), info for
// answers about the request itself.
func failureLevel(k connector.Kind) slog.Level {
	switch k {
	case connector.KindInvalidRequest, connector.KindNotFound, connector.KindBadRequest:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
