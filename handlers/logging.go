package handlers

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
)

// Logging logs each outcome once, with the attributes operators search by.
func Logging(logger *slog.Logger) consumer.Middleware {
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
			start := time.Now()
			out := next(ctx, d)
			level, msg := outcomeLevel(out)
			if !logger.Enabled(ctx, level) {
				return out
			}
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
				if out.Result.Error.RequestID != "" {
					attrs = append(attrs, slog.String("request_id", out.Result.Error.RequestID))
				}
			}
			if out.Duplicate {
				attrs = append(attrs, slog.Bool("duplicate", true))
			}
			if d.Exhausted {
				attrs = append(attrs, slog.Bool("out_of_deliveries", true))
			}
			switch {
			case out.Action == consumer.HandBack: // no result
			case out.Action == consumer.Retry:
				attrs = append(attrs, slog.Duration("redeliver_in", out.Delay), slog.Any("error", out.Err))
			case out.Result != nil && out.Result.Status == message.StatusSuccess:
				if out.Result.Cached != nil && *out.Result.Cached {
					attrs = append(attrs, slog.Bool("cached", true))
				}
				attrs = append(attrs, slog.Int("domains", len(out.Result.Domains)))
			default:
				if out.Err != nil {
					attrs = append(attrs, slog.Any("error", out.Err))
				}
			}
			logger.LogAttrs(ctx, level, msg, attrs...)
			return out
		}
	}
}

func outcomeLevel(out consumer.Outcome) (slog.Level, string) {
	switch {
	case out.Action == consumer.HandBack:
		return slog.LevelInfo, "request handed back at shutdown"
	case out.Action == consumer.Retry && out.Stored:
		return slog.LevelError, "stored result not readable, request will be redelivered"
	case out.Action == consumer.Retry:
		return slog.LevelError, "result not stored, request will be redelivered"
	case out.Duplicate:
		return slog.LevelInfo, "result stored by an earlier delivery"
	case out.Result == nil:
		return slog.LevelError, "no result"
	case out.Result.Status == message.StatusSuccess:
		return slog.LevelInfo, "success result stored"
	case slices.Contains([]message.Kind{message.KindInvalidRequest, message.KindNotFound, message.KindBadRequest}, out.Result.Kind()):
		return slog.LevelInfo, "failure result stored" // an answer about the request itself
	default:
		return slog.LevelWarn, "failure result stored" // an operator may have to act
	}
}
