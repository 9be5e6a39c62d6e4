package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/message"
)

// replayID is what the message ID of a republished copy says: the stream
// identity, the stored request it copies (source), and the failure result
// it answers (--failed) or the last sequence of the stream when the run
// started (a range form). The same candidate of two runs at once gets the
// same ID, so the stream stores it once.
type replayID struct {
	source  uint64
	answers uint64
	rest    string
}

const replayIDPrefix = "replay-"

func (id replayID) String(identity string) string {
	s := replayIDPrefix + identity + "-" + strconv.FormatUint(id.source, 10) + "-"
	if id.answers != 0 {
		return s + "f" + strconv.FormatUint(id.answers, 10) + id.rest
	}
	return s + id.rest
}

// parseReplayID reads a message ID of a replay copy of the stream with
// identity; ok is false for any other ID.
func parseReplayID(s, identity string) (id replayID, ok bool) {
	rest, found := strings.CutPrefix(s, replayIDPrefix+identity+"-")
	if !found {
		return id, false
	}
	src, rest, found := strings.Cut(rest, "-")
	if !found {
		return id, false
	}
	n, err := strconv.ParseUint(src, 10, 64)
	if err != nil || n == 0 {
		return id, false
	}
	id.source = n
	if f, found := strings.CutPrefix(rest, "f"); found {
		num, tail, _ := strings.Cut(f, "-")
		if a, err := strconv.ParseUint(num, 10, 64); err == nil {
			id.answers = a
			if tail != "" {
				id.rest = "-" + tail
			}
			return id, true
		}
	}
	id.rest = rest
	return id, true
}

// replayCopy is what copyOf found out about a stored request.
type replayCopy struct {
	ok   bool   // a copy that replay published
	root uint64 // the original of its chain (its Replay-Of)
}

// copyOf tells whether the stored request at seq is a copy that replay
// published: its message ID has replay's form and names a source request,
// and it carries exactly the body and headers of that source on the same
// subject. A header alone (Replay-Of, or a forged message ID) proves
// nothing; a publisher who sends an exact copy of a stored request sends
// that request again, which is what a replay does.
func (r *Replay) copyOf(ctx context.Context, seq uint64) (replayCopy, error) {
	if c, ok := r.genuine[seq]; ok {
		return c, nil
	}
	c, err := r.checkCopy(ctx, seq)
	if err == nil {
		r.genuine[seq] = c
	}
	return c, err
}

func (r *Replay) checkCopy(ctx context.Context, seq uint64) (replayCopy, error) {
	msg, err := r.getRequest(ctx, seq)
	if msg == nil || err != nil {
		return replayCopy{}, err
	}
	id, ok := parseReplayID(msg.Header.Get(message.HeaderMsgID), r.identity)
	if !ok || id.source >= seq {
		return replayCopy{}, nil
	}
	src, err := r.getRequest(ctx, id.source)
	if src == nil || err != nil {
		return replayCopy{}, err
	}
	if msg.Subject != src.Subject || !bytes.Equal(msg.Data, src.Data) || !sameHeaders(msg.Header, src.Header) {
		return replayCopy{}, nil
	}
	root := id.source
	if n := message.ReplayOf(msg.Header); n > 0 && n <= id.source {
		root = n
	}
	return replayCopy{ok: true, root: root}, nil
}

// getRequest reads a stored request message; nil when it is no longer
// stored or is not on REQUEST_SUBJECT (or its per-tenant form).
func (r *Replay) getRequest(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	raw, err := r.requests.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read request %d: %w", seq, err)
	}
	name, perTenant := strings.CutPrefix(raw.Subject, r.cfg.RequestSubject+".")
	if raw.Subject != r.cfg.RequestSubject && (!perTenant || strings.Contains(name, ".")) {
		return nil, nil
	}
	return raw, nil
}

// sameHeaders compares the headers a replay copies (every header but the
// Nats-* ones and Replay-Of), but for the trace context, which a copy
// replaces when tracing is on.
func sameHeaders(a, b nats.Header) bool {
	copied := func(h nats.Header) map[string]string {
		m := make(map[string]string, len(h))
		for k, v := range h {
			if !copiedHeader(k) || traceHeader(k) {
				continue
			}
			m[http.CanonicalHeaderKey(k)] = strings.Join(v, "\x00")
		}
		return m
	}
	return maps.Equal(copied(a), copied(b))
}

// copiedHeader reports whether a replay copies the header k.
func copiedHeader(k string) bool {
	return !strings.HasPrefix(strings.ToLower(k), "nats-") && !strings.EqualFold(k, message.HeaderReplayOf)
}

// replayMessage is the republished copy of a stored request: the same body
// and headers, without the Nats-* headers the server acts on (the
// publisher's Nats-Msg-Id would make the stream drop it as a duplicate;
// expectations and roll-ups would refuse it or purge), with Replay-Of naming
// the original and replay's own message ID.
func replayMessage(raw *jetstream.RawStreamMsg, subject string, root uint64, msgID string) *nats.Msg {
	h := nats.Header{}
	for k, v := range raw.Header {
		if copiedHeader(k) {
			h[k] = slices.Clone(v)
		}
	}
	h.Set(message.HeaderReplayOf, strconv.FormatUint(root, 10))
	if msgID != "" {
		h.Set(message.HeaderMsgID, msgID)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: raw.Data}
}
