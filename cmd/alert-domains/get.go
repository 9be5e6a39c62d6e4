package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
	"github.com/alert-domains/alert-domains/quota"
)

const getUsage = `get [flags] ID... | get [flags] -

Looks up the domains of alerts once, without NATS: the IDs given as
arguments, or with - one ID per line of stdin (blank lines skipped).
Prints one JSON result per line, in input order; each failure is also
explained on stderr. Exit status: 0 all succeeded, 1 any failed, 2 a
configuration or usage error.`

func runGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("get")
	workers := fs.Int("concurrency", 4, "lookups in flight at once")
	tenantName := fs.String("tenant", "", "the tenant whose Defender to ask: a name in TENANTS_FILE (default: the tenant called default)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	ids := fs.Args()
	switch {
	case *workers < 1:
		return usageErrorf("get: -concurrency must be at least 1")
	case len(ids) == 0:
		fs.Usage()
		return usageErrorf("get: no alert IDs (give them as arguments, or - to read them from stdin)")
	case len(ids) > 1 && slices.Contains(ids, "-"):
		return usageErrorf("get: - (read stdin) cannot be mixed with IDs")
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	list, fromFile, err := loadTenants(cfg, e)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list, func(t config.Tenant) bool { return t.Name == cmp.Or(*tenantName, config.DefaultTenant) })
	if i < 0 {
		return &exitError{code: 2, err: fmt.Errorf("get: %w: tenant %q is not configured (give --tenant NAME of a tenant in TENANTS_FILE)", config.ErrInvalid, cmp.Or(*tenantName, config.DefaultTenant))}
	}
	tenant := &list[i]
	w := &waits{retryNote: "for at most RETRY_MAX_ELAPSED, " + cfg.RetryMaxElapsed.String()}
	logger := newLogger(cfg, e)
	clients, leave, err := getClients(ctx, e, cfg, list, fromFile, tenant, w, logger)
	if err != nil {
		return err
	}
	defer leave()
	client := clients.client(tenant.Name)
	defer client.CloseIdleConnections()
	// What would make every lookup fail or stop working; a missing token each lookup explains.
	api := client.API()
	if api == connector.MDE {
		fmt.Fprintf(e.stderr, "alert-domains: get: tenant %s uses the Defender for Endpoint API (DEFENDER_API=mde), which Microsoft retires on %s; set DEFENDER_API=graph\n", tenant.Name, connector.MDERetirement)
	}
	if perm, err := client.CheckPermission(ctx); err == nil && perm == connector.PermissionMissing {
		fmt.Fprintf(e.stderr, "alert-domains: get: the access token of tenant %s lacks the application permission %s: lookups fail as forbidden until an admin grants consent (%s)\n",
			tenant.Name, api.Permission(), consentStep(api))
	}
	shown := "" // results name their tenant with a tenants file or -tenant
	if fromFile || *tenantName != "" {
		shown = tenant.Name
	}
	next, n := idReader(e.stdin, ids)
	return printLookups(ctx, e, client, shown, next, *workers, n, w, logger)
}

// printLookups looks up the IDs and prints each result on stdout, each failure explained on stderr.
func printLookups(ctx context.Context, e *env, client *connector.Client, tenant string, next func() (string, bool, error), workers, n int, w *waits, logger *slog.Logger) error {
	failed, total := false, ""
	var done atomic.Int64
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	if n > 0 {
		total = fmt.Sprintf(" of %d", n)
	}
	prog := newProgress(e.stdout, e.stderr)
	stop := w.watch(prog, logger, func() string { return fmt.Sprintf("%d%s done", done.Load(), total) })
	err := ops.LookupAll(ctx, client, tenant, next, workers, func(l ops.Lookup) error {
		if l.Err != nil {
			failed = true
			shown := l.ID
			if message.ValidateAlertID(l.ID) != nil {
				shown = fmt.Sprintf("%q", l.ID)
			}
			prog.println(e.stderr, fmt.Sprintf("alert-domains: get %s: %s: %v (attempts: %d)", shown, message.KindOf(l.Err), message.Printable(l.Err.Error(), 2048), l.Result.Attempts))
		}
		line.Reset()
		if err := enc.Encode(l.Result); err != nil {
			return fmt.Errorf("get: writing a result: %w", err)
		}
		prog.println(e.stdout, strings.TrimSuffix(line.String(), "\n"))
		done.Add(1)
		return nil
	})
	stop()
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, context.Cause(ctx)):
		return &exitError{code: 1, err: fmt.Errorf("get: %w", err)}
	case err != nil:
		return err
	case failed:
		return errSomeFailed
	}
	return nil
}

// getClients builds get's client of tenant, in the shared quota when NATS_URL is reachable.
func getClients(ctx context.Context, e *env, cfg *config.Config, list []config.Tenant, fromFile bool, tenant *config.Tenant, w *waits, logger *slog.Logger) (c *tenantClients, leave func(), err error) {
	opts := []connector.Option{w.option()}
	joined := *cfg
	joined.Provision = false // get joins serve's quota streams as they are, never redefines them
	c, err = newTenantClients(&joined, e, list, fromFile, logger, nil, opts, tenant.Name)
	w.limits = quotaText(tenant.RateLimits) + ", in this process"
	if err != nil || cfg.QuotaScope != quota.ScopeShared || len(tenant.RateLimits) == 0 {
		return c, func() {}, err
	}
	closeNATS, err := joinQuota(ctx, cfg, c, logger)
	if _, alone := errors.AsType[noNATS](err); err != nil && !alone {
		return nil, nil, fmt.Errorf("get: the shared quota cannot be used, so no call is made (QUOTA_SCOPE=process counts in this process alone): %w", err)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "alert-domains: get: counting the quota alone (%s in this process, not with serve's replicas): %v\n", quotaText(tenant.RateLimits), err)
		alone := *cfg
		alone.QuotaScope = quota.ScopeProcess
		c, err = newTenantClients(&alone, e, list, fromFile, logger, nil, opts, tenant.Name)
		return c, func() {}, err
	}
	w.limits = quotaText(tenant.RateLimits) + ", shared with serve's replicas"
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var running sync.WaitGroup
	running.Go(func() { _ = c.runQuotas(rctx) })
	return c, func() {
		stop()
		running.Wait()
		closeNATS()
	}, nil
}

// noNATS is why get counts the quota alone: NATS_URL is empty or unreachable.
type noNATS struct{ error }

// joinQuota connects c's shared quota to NATS_URL, provisioning (or verifying) its streams.
func joinQuota(ctx context.Context, cfg *config.Config, c *tenantClients, logger *slog.Logger) (closeNATS func(), err error) {
	if cfg.NATSURL == "" {
		return nil, noNATS{errors.New("NATS_URL is empty")}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, cfg, cfg.NATSURL, "alert-domains get", logger)
	if err != nil {
		return nil, noNATS{err}
	}
	js, err := jetstream.New(nc)
	if err == nil {
		err = c.start(ctx, js)
	}
	if errors.Is(err, quota.ErrMissing) { // no serve made them yet: get makes them
		c.cfg.Provision = cfg.Provision
		err = c.start(ctx, js)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return nc.Close, nil
}

// quotaText is limits as DEFENDER_RATE_LIMITS writes them, with spaces.
func quotaText(limits []connector.Limit) string {
	parts := make([]string, len(limits))
	for i, l := range limits {
		parts[i] = fmt.Sprintf("%d/%s", l.Count, metrics.ShortDuration(l.Window))
	}
	return cmp.Or(strings.Join(parts, ", "), "none")
}

// idReader yields the IDs of args or, when args is just -, the lines of stdin; n is how many (0: not known).
func idReader(stdin io.Reader, args []string) (next func() (string, bool, error), n int) {
	if len(args) == 1 && args[0] == "-" {
		return lineReader(stdin), 0
	}
	return func() (string, bool, error) {
		if len(args) == 0 {
			return "", false, nil
		}
		s := args[0]
		args = args[1:]
		return s, true, nil
	}, len(args)
}

// cancelable is next that returns ctx's error once ctx ends, since a read
// of stdin cannot be interrupted.
func cancelable(ctx context.Context, next func() (string, bool, error)) func() (string, bool, error) {
	reads := make(chan func() (string, bool, error), 1)
	return func() (string, bool, error) {
		go func() { id, ok, err := next(); reads <- func() (string, bool, error) { return id, ok, err } }()
		select {
		case read := <-reads:
			return read()
		case <-ctx.Done():
			return "", false, context.Cause(ctx)
		}
	}
}

// maxLine bounds a line of stdin; a longer one is read as an invalid ID.
const maxLine = 64 << 10

// lineReader yields the trimmed, non-blank lines of r.
func lineReader(r io.Reader) func() (string, bool, error) {
	br := bufio.NewReaderSize(r, maxLine)
	return func() (string, bool, error) {
		for {
			line, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				id := string(line[:message.MaxAlertIDLength+1]) // untrimmed, before the next read reuses line: never a valid ID
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				return id, true, nil
			}
			if t := bytes.TrimSpace(line); len(t) > 0 {
				return string(t), true, nil
			}
			if err == io.EOF {
				return "", false, nil
			}
			if err != nil {
				return "", false, fmt.Errorf("reading stdin: %w", err)
			}
		}
	}
}

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
		w.Quota = c.Quota() // newTenantConnector gives every client one
		return errors.Join(connector.WithQuota(w)(c), connector.WithObserver(w)(c))
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
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Go(func() {
		logged := ""
		for timing.Sleep(ctx, 250*time.Millisecond, nil) {
			reason, key := w.reason(time.Now())
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
	})
	return func() {
		cancel()
		running.Wait()
		p.draw("")
	}
}
