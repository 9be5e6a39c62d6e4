package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/ops"
	"github.com/alert-domains/alert-domains/internal/timing"
	"github.com/alert-domains/alert-domains/message"
)

const demoUsage = `demo

Starts an embedded NATS server, the built-in Defender emulator and the service,
publishes sample alerts, prints their results and exits.`

// demoSample is one request the demo publishes and what it shows.
type demoSample struct{ body, what string }

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
		{"da637472900382838869_1364969609", "an alert with two domains"},
		{"637612345678901234_1122334455", legacy},
		{"636688558380765161_2136280442", "an alert without domains"},
		{`{"alertId":"` + demoThrottled + `","correlationId":"siem-42"}`, "throttled once (429, Retry-After: 1), then answered"},
		{"da637000000000000000_404404404", "an alert Microsoft does not know"},
		{demoForbidden, "the app lacks the permission for this call (403): replay it once an admin grants consent"},
		{demoGarbled, "an answer that is not the documented JSON"},
		{"../machines", "an invalid alert ID, never sent to Microsoft"},
		{`{"alertId":"da637472900382838869_1364969609","tenant":"initech"}`, "a request for a tenant that is not configured"},
		{"da637472900382838869_1364969609", "the first alert again, answered from the cache"}, // published last: demoPublish
	}
}

func runDemo(ctx context.Context, e *env, args []string) error {
	if err := parse(e.flags("demo"), args, true); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "alert-domains-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	emu := emulator.NewServer(emulator.Config{SeedData: true})
	defer emu.Close()
	cfg, own, err := demoConfig(e, emu, dir)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// The demo's special answers, in the API's wire format.
	throttled, forbidden := `{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"date":"2026-12-07T09:14:03","request-id":"demo-429","client-request-id":"demo-429"}}}`,
		`{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All.","innerError":{"date":"2026-12-07T09:14:03","request-id":"demo-403","client-request-id":"demo-403"}}}`
	if cfg.API == connector.MDE {
		throttled, forbidden = `{"error":{"code":"TooManyRequests","message":"API calls quota exceeded! Maximum allowed 100 per minute.","target":"demo-429"}}`,
			`{"error":{"code":"Forbidden","message":"Missing role URL.Read.All","target":"demo-403"}}`
	}
	emu.Script(demoThrottled, emulator.Answer{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}, Body: throttled})
	emu.Script(demoForbidden, emulator.Answer{Status: http.StatusForbidden, Body: forbidden})
	emu.Script(demoGarbled, emulator.Answer{Status: http.StatusOK, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html><body>Service maintenance</body></html>"})
	e.hc = emu.Client()
	svc, err := newService(cfg, e, []config.Tenant{own}, false, newLogger(cfg, e))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute) // the whole demo
	defer cancel()
	svcCtx, stopService := context.WithCancel(ctx)
	defer stopService()
	readyCh, svcDone := make(chan string, 1), make(chan error, 1)
	svc.onReady = func(url string) { readyCh <- url }
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
	return cmp.Or(runErr, <-svcDone)
}

// demoConfig is the environment, with NATS, Microsoft and the tenant the demo's.
func demoConfig(e *env, emu *emulator.Server, dir string) (*config.Config, config.Tenant, error) {
	overrides := map[string]string{
		"NATS_URL": "", "NATS_EMBEDDED_LISTEN": "127.0.0.1:0", "NATS_EMBEDDED_STORE_DIR": dir, "HTTP_LISTEN": "",
		"DEFENDER_CLOUD": "public", "DEFENDER_API_URL": emu.URL, "DEFENDER_SCOPE": "", "AZURE_AUTHORITY_HOST": emu.URL + "/",
		"AZURE_TENANT_ID": emu.TenantID(), "AZURE_CLIENT_ID": emu.ClientID(), "AZURE_CLIENT_SECRET": emu.ClientSecret(),
		"AZURE_CLIENT_CERTIFICATE_PATH": "", "AZURE_CLIENT_CERTIFICATE_PASSWORD": "", "AZURE_FEDERATED_TOKEN_FILE": "", "DEFENDER_MANAGED_IDENTITY": "",
		"RETRY_INITIAL_INTERVAL": "200ms", "PROVISION": "true", "ON_SUCCESS_EXEC": "", "ON_FAILURE_EXEC": "", "TENANTS_FILE": "",
		"LOG_LEVEL": cmp.Or(e.getenv("LOG_LEVEL"), "error"),
	}
	cfg, err := config.Load(func(k string) (string, bool) {
		if v, ok := overrides[k]; ok {
			return v, true
		}
		return e.lookupEnv(k)
	})
	if err != nil {
		return nil, config.Tenant{}, err
	}
	own, err := cfg.EnvironmentTenant()
	return cfg, own, err
}

// demoPublish publishes the samples and prints their results in order.
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
	results, err := ops.OpenTail(ctx, js, cfg, ops.TailOptions{})
	if err != nil {
		return err
	}
	defer results.Stop()
	samples := demoSamples(cfg.API)
	seqs, got := make([]uint64, len(samples)), make([]*message.Result, len(samples))
	publish := func(i int) error {
		ack, err := js.Publish(ctx, cfg.RequestSubject, []byte(samples[i].body))
		if err != nil {
			return fmt.Errorf("publish sample %d: %w", i+1, err)
		}
		seqs[i] = ack.Sequence
		return nil
	}
	last := len(samples) - 1 // held back until the first is acknowledged, so the cache answers it
	for i := range last {
		if err := publish(i); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "%-3s %-34s %-8s %-8s %-6s %s\n", "#", "ALERT", "STATUS", "ATTEMPTS", "CACHED", "DOMAINS / ERROR")
	for printed, done := 0, 0; done < len(samples); {
		_, r, _, err := results.Next(ctx)
		if err != nil {
			return fmt.Errorf("only %d of %d results arrived: %w", done, len(samples), err)
		}
		i := slices.Index(seqs, r.RequestSequence)
		if r.RequestSequence == 0 || i < 0 || got[i] != nil {
			continue
		}
		got[i], done = r, done+1
		if i == 0 {
			if err := demoAcked(ctx, js, cfg, seqs[0]); err != nil {
				return err
			}
			if err := publish(last); err != nil {
				return err
			}
		}
		for ; printed < len(samples) && got[printed] != nil; printed++ {
			printDemoRow(w, printed, samples[printed], got[printed])
		}
	}
	fmt.Fprintf(w, "\n%d requests, %d results. Results are JSON on %s and %s; see README.md.\n", len(samples), len(samples), cfg.SuccessSubject, cfg.FailureSubject)
	return nil
}

// demoAcked waits until the request at seq is acknowledged, so the cache holds it.
func demoAcked(ctx context.Context, js jetstream.JetStream, cfg *config.Config, seq uint64) error {
	cons, err := js.Consumer(ctx, cfg.RequestStream, cfg.ConsumerName)
	if err != nil {
		return err
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil || info.AckFloor.Stream >= seq {
			return err
		}
		if !timing.Sleep(ctx, 10*time.Millisecond, nil) {
			return ctx.Err()
		}
	}
}

func printDemoRow(w io.Writer, i int, s demoSample, r *message.Result) {
	alert, cached, detail := cmp.Or(r.AlertID, fmt.Sprintf("(invalid: %q)", s.body)), "no", resultDetail(r, "[]")
	switch {
	case r.Error != nil:
		cached = "-"
	case r.Cached != nil && *r.Cached:
		cached = "yes"
	}
	if r.GraphAlertID != "" && r.Error == nil {
		detail += " (graphAlertId " + r.GraphAlertID + ")"
	}
	fmt.Fprintf(w, "%-3d %-34s %-8s %-8d %-6s %s\n    %s\n", i+1, alert, r.Status, r.Attempts, cached, detail, s.what)
}
