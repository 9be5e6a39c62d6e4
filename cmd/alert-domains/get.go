package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/quota"
)

// newConnector builds the Defender client the configuration describes: its
// credential, quota, time-out and retry policy. hc, when not nil, is the
// HTTP client for both Entra ID and Defender (an emulator's, for example);
// extra options come last.
func newConnector(cfg *config.Config, hc *http.Client, extra ...connector.Option) (*connector.Client, error) {
	t, err := cfg.EnvironmentTenant()
	if err != nil {
		return nil, err
	}
	return newTenantConnector(cfg, &t, hc, extra...)
}

const getSynopsis = `get [flags] ID... | get [flags] -

Looks up the domains of alerts once, without NATS: the IDs given as
arguments, or with - one ID per line of stdin (blank lines skipped).
Prints one JSON result per line, in input order; each failure is also
explained on stderr. Exit status: 0 all succeeded, 1 any failed, 2 a
configuration or usage error.`

func runGet(ctx context.Context, e *env, args []string) error {
	return runGetWith(ctx, e, args, nil)
}

// runGetWith is runGet with the HTTP client for Entra ID and Defender (nil:
// the connector's own).
func runGetWith(ctx context.Context, e *env, args []string, hc *http.Client) error {
	fs := newFlags(e, "get", getSynopsis)
	workers := fs.Int("concurrency", 4, "lookups in flight at once")
	tenantName := fs.String("tenant", "", "the tenant whose Defender to ask: a name in TENANTS_FILE (default: the tenant called default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *workers < 1 {
		return usageErrorf("get: -concurrency must be at least 1")
	}
	ids := fs.Args()
	fromStdin := len(ids) == 1 && ids[0] == "-"
	switch {
	case len(ids) == 0:
		fs.Usage()
		return usageErrorf("get: no alert IDs (give them as arguments, or - to read them from stdin)")
	case !fromStdin && containsDash(ids):
		return usageErrorf("get: - (read stdin) cannot be mixed with IDs")
	}
	cfg, err := config.Load(e.lookupEnv)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	list, fromFile, err := loadTenants(cfg, e)
	if err != nil {
		return err
	}
	name := *tenantName
	if name == "" {
		name = config.DefaultTenant
	}
	i := slices.IndexFunc(list, func(t config.Tenant) bool { return t.Name == name })
	if i < 0 {
		return &exitError{code: 2, err: fmt.Errorf("get: %w: tenant %q is not configured (give --tenant NAME of a tenant in TENANTS_FILE)", config.ErrInvalid, name)}
	}
	tenant := &list[i]
	layout, all := quota.NewLayout(cfg.ConsumerName, cfg.RateLimits), tenant.RateLimits
	if fromFile && cfg.QuotaScope == quota.ScopeShared {
		if layout, all, err = sharedQuota(cfg, list); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	quotaOpts, leaveQuota := joinSharedQuota(ctx, cfg, tenant, layout, all, newLogger(cfg, e), e.stderr)
	defer leaveQuota()
	client, err := newTenantConnector(cfg, tenant, hc, quotaOpts...)
	if err != nil {
		return configError(err)
	}
	// Results name their tenant when the tenants come from a file or one
	// was asked for; get without either prints what it always printed.
	shownTenant := ""
	if fromFile || *tenantName != "" {
		shownTenant = tenant.Name
	}
	defer client.CloseIdleConnections()
	warnGet(ctx, e, client, tenant.Name)

	var next func() (string, bool, error)
	if fromStdin {
		next = lineReader(e.stdin)
	} else {
		next = func() (string, bool, error) {
			if len(ids) == 0 {
				return "", false, nil
			}
			id := ids[0]
			ids = ids[1:]
			return id, true, nil
		}
	}
	failed := false
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	err = ops.LookupAll(ctx, client, shownTenant, next, *workers, func(l ops.Lookup) error {
		if l.Err != nil {
			failed = true
			fmt.Fprintln(e.stderr, explainFailure(l))
		}
		if err := enc.Encode(l.Result); err != nil {
			return fmt.Errorf("get: writing a result: %w", err)
		}
		return nil
	})
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

// warnGet says on stderr, before any lookup, what would make every lookup
// of the tenant fail or stop working: the endpoint API's retirement, and a
// token without the permission the API needs. A token that cannot be had
// says nothing here: each lookup explains it.
func warnGet(ctx context.Context, e *env, client *connector.Client, tenant string) {
	api := client.API()
	if api == connector.MDE {
		fmt.Fprintf(e.stderr, "alert-domains: get: tenant %s uses the Defender for Endpoint API (DEFENDER_API=mde), which Microsoft retires on %s; set DEFENDER_API=graph\n", tenant, connector.MDERetirement)
	}
	if perm, err := client.CheckPermission(ctx); err == nil && perm == connector.PermissionMissing {
		fmt.Fprintf(e.stderr, "alert-domains: get: the access token of tenant %s lacks the application permission %s: lookups fail as forbidden until an admin grants consent (%s)\n",
			tenant, api.Permission(), consentStep(api))
	}
}

// explainFailure is the line on stderr that explains a failure.
func explainFailure(l ops.Lookup) string {
	shown := l.ID
	if message.ValidateAlertID(l.ID) != nil {
		shown = fmt.Sprintf("%q", l.ID)
	}
	return fmt.Sprintf("alert-domains: get %s: %s: %v (attempts: %d)", shown, message.KindOf(l.Err), l.Err, l.Result.Attempts)
}

func containsDash(args []string) bool {
	for _, a := range args {
		if a == "-" {
			return true
		}
	}
	return false
}

// maxLine bounds a line of stdin; a longer one is read as an invalid ID.
const maxLine = 64 << 10

// lineReader yields the trimmed, non-blank lines of r.
func lineReader(r io.Reader) func() (string, bool, error) {
	br := bufio.NewReaderSize(r, maxLine)
	return func() (string, bool, error) {
		for {
			line, err := br.ReadSlice('\n')
			tooLong := errors.Is(err, bufio.ErrBufferFull)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if tooLong {
				// The line's first bytes, untrimmed: too long or with white
				// space, so never a valid ID.
				return string(line[:message.MaxAlertIDLength+1]), true, nil
			}
			if t := bytes.TrimSpace(line); len(t) > 0 {
				return string(t), true, nil
			}
			if err == io.EOF {
				return "", false, nil
			}
			if err != nil {
				return "", false, fmt.Errorf("get: reading stdin: %w", err)
			}
		}
	}
}
