package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

// demoSample is one request the demo publishes and what it shows.
type demoSample struct {
	body string
	what string
	// after, when set, holds the sample back until the result of the
	// sample with that index has arrived (to show a cached answer).
	after int
}

// The alerts the demo scripts the emulator to answer in a special way.
const (
	demoThrottled = "da637200417169017725_183736971"
	demoForbidden = "da637600000000000000_1000000001"
	demoGarbled   = "da637551227677560813_-961444813"
)

func demoSamples(api connector.API) []demoSample {
	legacy := "an alert asked by its endpoint ID: Graph knows it as da637612345678901234_1122334455, asked once more"
	if api == connector.MDE {
		legacy = "an alert asked by its endpoint ID"
	}
	return []demoSample{
		{body: "da637472900382838869_1364969609", what: "an alert with two domains", after: -1},
		{body: "637612345678901234_1122334455", what: legacy, after: -1},
		{body: "636688558380765161_2136280442", what: "an alert without domains", after: -1},
		{body: `{"alertId":"` + demoThrottled + `","correlationId":"siem-42"}`, what: "throttled once (429, Retry-After: 1), then answered", after: -1},
		{body: "da637000000000000000_404404404", what: "an alert Microsoft does not know", after: -1},
		{body: demoForbidden, what: "the app lacks the permission for this call (403): replay it once an admin grants consent", after: -1},
		{body: demoGarbled, what: "an answer that is not the documented JSON", after: -1},
		{body: "../machines", what: "an invalid alert ID, never sent to Microsoft", after: -1},
		{body: `{"alertId":"da637472900382838869_1364969609","tenant":"initech"}`, what: "a request for a tenant that is not configured", after: -1},
		{body: "da637472900382838869_1364969609", what: "the first alert again, answered from the cache", after: 0},
	}
}

// scriptDemo makes the emulator answer the demo's special alerts in api's
// wire format.
func scriptDemo(emu *emulator.Server, api connector.API) {
	throttled, forbidden := `{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"date":"2026-12-07T09:14:03","request-id":"demo-429","client-request-id":"demo-429"}}}`,
		`{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All.","innerError":{"date":"2026-12-07T09:14:03","request-id":"demo-403","client-request-id":"demo-403"}}}`
	if api == connector.MDE {
		throttled, forbidden = `{"error":{"code":"TooManyRequests","message":"API calls quota exceeded! Maximum allowed 100 per minute.","target":"demo-429"}}`,
			`{"error":{"code":"Forbidden","message":"Missing role URL.Read.All","target":"demo-403"}}`
	}
	emu.Script(demoThrottled, emulator.Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}, Body: throttled})
	emu.Script(demoForbidden, emulator.Answer{Status: http.StatusForbidden, Body: forbidden})
	emu.Script(demoGarbled, emulator.Answer{Status: http.StatusOK, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html><body>Service maintenance</body></html>"})
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "demo\n\nStarts an embedded NATS server, the built-in Defender emulator and the service,\npublishes sample alerts, prints their results and exits.")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "alert-domains-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	emu := emulator.NewServer(emulator.WithSeedData())
	defer emu.Close()

	overrides := map[string]string{
		"NATS_URL":                "",
		"NATS_EMBEDDED_LISTEN":    "127.0.0.1:0",
		"NATS_EMBEDDED_STORE_DIR": dir,
		"HTTP_LISTEN":             "",
		"DEFENDER_CLOUD":          "public",
		"DEFENDER_API_URL":        emu.URL,
		"DEFENDER_SCOPE":          "",
		"AZURE_AUTHORITY_HOST":    emu.URL + "/",
		"AZURE_TENANT_ID":         emu.TenantID(),
		"AZURE_CLIENT_ID":         emu.ClientID(),
		"AZURE_CLIENT_SECRET":     emu.ClientSecret(),
		"RETRY_INITIAL_INTERVAL":  "200ms",
		"PROVISION":               "true",
		"ON_SUCCESS_EXEC":         "",
		"ON_FAILURE_EXEC":         "",
		"TENANTS_FILE":            "",
	}
	for _, k := range []string{"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "DEFENDER_MANAGED_IDENTITY"} {
		overrides[k] = ""
	}
	cfg, err := config.Load(func(k string) (string, bool) {
		if v, ok := overrides[k]; ok {
			return v, true
		}
		if k == "LOG_LEVEL" && e.getenv(k) == "" {
			return "error", true
		}
		return e.lookupEnv(k)
	})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	scriptDemo(emu, cfg.API)
	logger := newLogger(cfg, e)
	own, err := cfg.EnvironmentTenant()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	svc, err := newService(cfg, e, []config.Tenant{own}, false, emu.Client(), logger)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	readyCh := make(chan string, 1)
	svc.onReady = func(url string) { readyCh <- url }
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.run(svcCtx) }()

	fmt.Fprintf(e.stdout, "alert-domains demo: embedded NATS, Microsoft emulator at %s, service on DEFENDER_API=%s with CONCURRENCY=%d\n\n", emu.URL, cfg.API, cfg.Concurrency)
	var natsURL string
	select {
	case natsURL = <-readyCh:
	case err := <-svcDone:
		return fmt.Errorf("service stopped before it was ready: %v", err)
	case <-ctx.Done():
		return fmt.Errorf("service not ready in time: %w", ctx.Err())
	}

	runErr := demoPublish(ctx, e.stdout, natsURL, cfg)
	stopService()
	if err := <-svcDone; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// demoPublish publishes the samples and prints each result as it arrives.
func demoPublish(ctx context.Context, w io.Writer, natsURL string, cfg *config.Config) error {
	nc, err := nats.Connect(natsURL, nats.Name("alert-domains demo"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	results := make(chan *nats.Msg, 64)
	for _, subj := range []string{cfg.SuccessSubject, cfg.FailureSubject, cfg.SuccessSubject + ".*", cfg.FailureSubject + ".*"} {
		sub, err := nc.ChanSubscribe(subj, results)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		return err
	}

	samples := demoSamples(cfg.API)
	seqOf := make(map[uint64]int)
	done := make(map[int]bool)
	publish := func(i int) error {
		ack, err := js.Publish(ctx, cfg.RequestSubject, []byte(samples[i].body))
		if err != nil {
			return fmt.Errorf("publish sample %d: %w", i+1, err)
		}
		seqOf[ack.Sequence] = i
		return nil
	}
	for i, s := range samples {
		if s.after < 0 {
			if err := publish(i); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(w, "%-3s %-34s %-8s %-8s %-6s %s\n", "#", "ALERT", "STATUS", "ATTEMPTS", "CACHED", "DOMAINS / ERROR")
	// Rows are printed in the order of the samples, each as soon as it and
	// every row before it have their result.
	got := make(map[int]*message.Result)
	printed := 0
	for len(done) < len(samples) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d results arrived: %w", len(done), len(samples), ctx.Err())
		case m := <-results:
			var r message.Result
			if err := json.Unmarshal(m.Data, &r); err != nil {
				return fmt.Errorf("result is not JSON: %w", err)
			}
			i, ok := seqOf[r.RequestSequence]
			if !ok || done[i] {
				continue
			}
			done[i], got[i] = true, &r
			for j, s := range samples {
				if s.after == i {
					if err := publish(j); err != nil {
						return err
					}
				}
			}
			for ; got[printed] != nil; printed++ {
				printDemoRow(w, printed, samples[printed], got[printed])
			}
		}
	}
	fmt.Fprintf(w, "\n%d requests, %d results. Results are JSON on %s and %s; see README.md.\n", len(samples), len(done), cfg.SuccessSubject, cfg.FailureSubject)
	return nil
}

func printDemoRow(w io.Writer, i int, s demoSample, r *message.Result) {
	alert := r.AlertID
	if alert == "" {
		alert = fmt.Sprintf("(invalid: %q)", s.body)
	}
	cached := "no"
	if r.Cached != nil && *r.Cached {
		cached = "yes"
	}
	detail := "[]"
	if r.Status == message.StatusSuccess && len(r.Domains) > 0 {
		detail = strings.Join(r.Domains, ", ")
	}
	if r.GraphAlertID != "" {
		detail += " (graphAlertId " + r.GraphAlertID + ")"
	}
	if r.Error != nil {
		cached = "-"
		detail = string(r.Error.Kind) + ": " + r.Error.Message
		if r.Error.HTTPStatus != 0 {
			detail += fmt.Sprintf(" (HTTP %d)", r.Error.HTTPStatus)
		}
	}
	fmt.Fprintf(w, "%-3d %-34s %-8s %-8d %-6s %s\n", i+1, alert, r.Status, r.Attempts, cached, detail)
	fmt.Fprintf(w, "    %s\n", s.what)
}
