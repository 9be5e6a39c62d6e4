package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

// progress is a line on stderr, on a terminal only, that says how far a long run is.
type progress struct {
	mu           sync.Mutex
	w            io.Writer // nil: no progress shown
	clear, drawn bool
	last         time.Time
	total, done  int
	verb         string
}

func newProgress(stdout, stderr io.Writer) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{w: stderr, clear: isTerminal(stdout)}
}

func (p *progress) start(total int, dryRun bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.verb = total, "replaying"
	if dryRun {
		p.verb = "checking"
	}
}

func (p *progress) step() {
	p.mu.Lock()
	p.done++
	text := fmt.Sprintf("%s %d/%d", p.verb, p.done, p.total)
	p.mu.Unlock()
	p.draw(text)
}

// draw shows text as the progress line; "" clears it.
func (p *progress) draw(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil || (text != "" && time.Since(p.last) < 100*time.Millisecond) || (text == "" && !p.drawn) {
		return
	}
	p.last, p.drawn = time.Now(), text != ""
	fmt.Fprintf(p.w, "\r\x1b[K%s", text)
}

// println writes a line of output, keeping the progress line out of it.
func (p *progress) println(w io.Writer, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn && (p.clear || w == p.w) {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(w, line)
}

func (p *progress) finish() { p.draw("") }

// waits is what the lookups of one client wait for: it wraps its quota and observes its calls.
type waits struct {
	connector.Quota
	mu                sync.Mutex
	inQuota           int       // lookups waiting for a slot
	quotaSince        time.Time // since the first of them
	until             time.Time // Retry-After: no call before then
	retry             int       // the status of the latest answer, while it is one to retry (-1: no answer)
	retrySince        time.Time
	limits, retryNote string
}

// option makes the client report to w.
func (w *waits) option() connector.Option {
	return func(c *connector.Client) error {
		if w.Quota = c.Quota(); w.Quota == nil {
			w.Quota = connector.NewLimiter(nil)
		}
		if err := connector.WithQuota(w)(c); err != nil {
			return err
		}
		return connector.WithObserver(w)(c)
	}
}

func (w *waits) Acquire(ctx context.Context) (func(), time.Duration, error) {
	w.mu.Lock()
	if w.inQuota++; w.inQuota == 1 {
		w.quotaSince = time.Now()
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inQuota--
		w.mu.Unlock()
	}()
	return w.Quota.Acquire(ctx)
}

func (w *waits) Cooldown(retryAfter time.Duration) {
	w.mu.Lock()
	if until := time.Now().Add(retryAfter); until.After(w.until) {
		w.until = until
	}
	w.mu.Unlock()
	w.Quota.Cooldown(retryAfter)
}

func (w *waits) DefenderCall(status int, _ time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case status == 0:
		w.retry, w.retrySince = -1, time.Now()
	case status == 429 || status >= 500:
		w.retry, w.retrySince = status, time.Now()
	default:
		w.retry = 0
	}
}

func (w *waits) QuotaWait(time.Duration) {}

// reason says what has kept the lookups waiting for a second or more; key names that wait ("": none).
func (w *waits) reason(now time.Time) (reason, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.until.Sub(now) >= time.Second:
		return fmt.Sprintf("Microsoft answered 429: next call in %s (Retry-After)", w.until.Sub(now).Round(time.Second)), "retry-after " + w.until.String()
	case w.inQuota > 0 && now.Sub(w.quotaSince) >= time.Second:
		return fmt.Sprintf("waiting %s for a slot of the quota (%s)", now.Sub(w.quotaSince).Round(time.Second), w.limits), "quota " + w.quotaSince.String()
	case w.retry != 0 && now.Sub(w.retrySince) >= time.Second:
		answer := fmt.Sprintf("HTTP %d", w.retry)
		if w.retry < 0 {
			answer = "a network error or time-out"
		}
		return fmt.Sprintf("retrying after %s, with backoff (%s)", answer, w.retryNote), "retry " + w.retrySince.String()
	}
	return "", ""
}

// watch says, until stop, what keeps the lookups waiting: in the progress line, or a log line.
func (w *waits) watch(p *progress, logger *slog.Logger, done func() string) (stop func()) {
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		logged := ""
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				reason, key := w.reason(now)
				switch {
				case p.w != nil && reason == "":
					p.draw("")
				case p.w != nil:
					p.draw("get: " + done() + "; " + reason)
				case key != "" && key != logged:
					logged = key
					logger.Info("get: waiting for Microsoft", slog.String("reason", reason), slog.String("done", done()))
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-stopped
		p.finish()
	}
}
