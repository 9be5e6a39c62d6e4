package bench

import (
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/broker"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// The baseline's streams and subjects.
const (
	baselineRequestStream  = "BENCH_REQ"
	baselineRequestSubject = "bench.req"
	baselineResultStream   = "BENCH_RES"
	baselineSuccessSubject = "bench.res.success"
	baselineFailureSubject = "bench.res.failure"
)

// BenchmarkBaseline is a burst of -bench.n requests through the baseline:
// req/s from the first publish to the last result stored, and the
// latencies of the burst.
func BenchmarkBaseline(b *testing.B) {
	tg := startBaseline(b, *benchWorkers)
	var total stats
	for b.Loop() {
		total.add(runWorkload(b, tg, *benchN))
	}
	b.Logf("baseline, %d workers: %v", *benchWorkers, &total)
	total.report(b, "")
}

// BenchmarkBaselineLatency is a steady -bench.rate requests/s for
// -bench.duration through the baseline: p50 and p99 request-to-result latency.
func BenchmarkBaselineLatency(b *testing.B) {
	tg := startBaseline(b, *benchWorkers)
	var total stats
	for b.Loop() {
		total.add(runPaced(b, tg, *benchRate, *benchDuration))
	}
	b.Logf("baseline, %d workers, %d req/s for %v: %v", *benchWorkers, *benchRate, *benchDuration, &total)
	total.report(b, "")
}

// TestBaseline runs a small workload through the baseline, so that the
// benchmark keeps working.
func TestBaseline(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a nats-server")
	}
	tg := startBaseline(t, 8)
	s := runWorkload(t, tg, 300)
	if s.requests != 300 || s.failures != 0 || len(s.latencies) != 300 {
		t.Errorf("%d results, %d failures, %d latencies; want 300, 0, 300", s.requests, s.failures, len(s.latencies))
	}
	s = runPaced(t, tg, 500, 200*time.Millisecond)
	if s.requests != 100 || s.failures != 0 {
		t.Errorf("paced: %d results, %d failures; want 100, 0", s.requests, s.failures)
	}
}

// startBaseline starts a nats-server, the Defender emulator and the
// baseline loop with the given number of workers, and returns the baseline
// as a target.
func startBaseline(tb testing.TB, workers int) target {
	return startBaselineFor(tb, workers, *benchAPI)
}

// startBaselineFor is startBaseline calling Microsoft's api (graph or mde).
func startBaselineFor(tb testing.TB, workers int, api string) target {
	tb.Helper()
	ns := testenv.StartNATS(tb)
	tg := startBaselineOn(tb, ns.JetStream(tb), 1, workers, api)
	tg.url = ns.URL()
	tg.pids = append(tg.pids, ns.PID())
	return tg
}

// startBaselineOn starts the Defender emulator and the baseline loop on the
// NATS server (or cluster) of js, with streams of the given replica count,
// and returns the baseline as a target without its URL and with this
// process as its only pid; the caller adds the server's.
func startBaselineOn(tb testing.TB, js jetstream.JetStream, replicas, workers int, apiName string) target {
	tb.Helper()
	api := newDefenderAPI(tb, apiName)
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()

	for _, cfg := range []jetstream.StreamConfig{
		{Name: baselineRequestStream, Subjects: []string{baselineRequestSubject}},
		{Name: baselineResultStream, Subjects: []string{baselineSuccessSubject, baselineFailureSubject}},
	} {
		cfg.Storage = jetstream.FileStorage
		cfg.Replicas = replicas
		if err := broker.Retrying(ctx, slog.New(slog.DiscardHandler), func() error {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			return err
		}); err != nil {
			tb.Fatalf("stream %s: %v", cfg.Name, err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, baselineRequestStream, jetstream.ConsumerConfig{
		Durable:   "bench",
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
	})
	if err != nil {
		tb.Fatalf("consumer: %v", err)
	}

	loop := &baseline{js: js, api: api, jobs: make(chan jetstream.Msg)}
	loop.start(tb, cons, workers)
	return target{
		requestSubject: baselineRequestSubject,
		resultStream:   baselineResultStream,
		resultSubjects: []string{baselineSuccessSubject, baselineFailureSubject},
		pids:           []int{os.Getpid()},
	}
}

// baseline is the loop: pull a request, ask the API, publish the result with
// a message ID, ack.
type baseline struct {
	js   jetstream.JetStream
	api  *defenderAPI
	jobs chan jetstream.Msg

	errs errorCount
}

func (l *baseline) start(tb testing.TB, cons jetstream.Consumer, workers int) {
	tb.Helper()
	ctx, cancel := context.WithCancel(tb.Context())
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { l.work(ctx) })
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		select {
		case l.jobs <- msg:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*workers))
	if err != nil {
		cancel()
		wg.Wait()
		tb.Fatalf("consume: %v", err)
	}
	tb.Cleanup(func() {
		cc.Stop()
		cancel()
		wg.Wait()
		if n, first := l.errs.get(); n > 0 {
			tb.Errorf("baseline: %d errors, the first: %v", n, first)
		}
	})
}

func (l *baseline) work(ctx context.Context) {
	for {
		select {
		case msg := <-l.jobs:
			if err := l.handle(ctx, msg); err != nil && ctx.Err() == nil {
				l.errs.add(err)
				if err := msg.NakWithDelay(100 * time.Millisecond); err != nil {
					l.errs.add(err)
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// baselineResult is the result the baseline publishes.
type baselineResult struct {
	Status          string   `json:"status"`
	AlertID         string   `json:"alertId"`
	Domains         []string `json:"domains"`
	RequestSequence uint64   `json:"requestSequence"`
	CompletedAt     string   `json:"completedAt"`
}

func (l *baseline) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	alertID := strings.TrimSpace(string(msg.Data()))
	domains, err := l.api.domains(ctx, alertID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(baselineResult{
		Status:          "success",
		AlertID:         alertID,
		Domains:         domains,
		RequestSequence: meta.Sequence.Stream,
		CompletedAt:     time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	})
	if err != nil {
		return err
	}
	result := &nats.Msg{
		Subject: baselineSuccessSubject,
		Data:    body,
		Header: nats.Header{
			"Content-Type":  []string{"application/json"},
			"Alert-Id":      []string{alertID},
			"Result-Status": []string{"success"},
		},
	}
	msgID := baselineRequestStream + "-" + strconv.FormatUint(meta.Sequence.Stream, 10)
	if _, err := l.js.PublishMsg(ctx, result, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	return msg.Ack()
}

// defenderAPI calls the Defender emulator (emulator) over
// loopback TLS with one bearer token, obtained once, and a client that keeps
// a connection alive per worker.
type defenderAPI struct {
	api    string // graph or mde
	url    string
	token  string
	client *http.Client
}

func newDefenderAPI(tb testing.TB, apiName string) *defenderAPI {
	tb.Helper()
	srv := emulator.NewServer(emulator.Config{AnyAlert: true})
	tb.Cleanup(srv.Close)
	api := &defenderAPI{api: apiName, url: srv.URL, client: keepAliveClient(srv.Client())}
	tb.Cleanup(api.client.CloseIdleConnections)
	token, err := api.fetchToken(tb.Context(), srv.TenantID(), srv.ClientID(), srv.ClientSecret())
	if err != nil {
		tb.Fatalf("token: %v", err)
	}
	api.token = token
	return api
}

// keepAliveClient returns a client like c whose transport keeps enough idle
// connections for every worker (the default keeps 2 per host).
func keepAliveClient(c *http.Client) *http.Client {
	tr := c.Transport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// fetchToken gets an access token with the client credentials grant.
func (d *defenderAPI) fetchToken(ctx context.Context, tenant, clientID, secret string) (string, error) {
	scope := emulator.Scope
	if d.api == "graph" {
		scope = emulator.GraphScope
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {secret},
		"scope":         {scope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		d.url+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return "", err
	}
	return answer.AccessToken, nil
}

// domainsAnswer is the part of the endpoint API's answer the baseline reads.
type domainsAnswer struct {
	Value []struct {
		Host string `json:"host"`
	} `json:"value"`
}

// graphAnswer is the part of a Graph alert the baseline reads: the evidence
// that names hosts, decoded as the service decodes it.
type graphAnswer struct {
	Evidence []struct {
		URL        string   `json:"url"`
		URLs       []string `json:"urls"`
		DomainName string   `json:"domainName"`
	} `json:"evidence"`
}

// hosts are the host names of a's evidence, in order.
func (a *graphAnswer) hosts() []string {
	var hosts []string
	for _, e := range a.Evidence {
		for _, raw := range append([]string{e.URL}, e.URLs...) {
			if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
				hosts = append(hosts, u.Hostname())
			}
		}
		if e.DomainName != "" {
			hosts = append(hosts, e.DomainName)
		}
	}
	return hosts
}

// domains asks the API of d for the domains of alertID.
func (d *defenderAPI) domains(ctx context.Context, alertID string) ([]string, error) {
	path := "/api/alerts/" + url.PathEscape(alertID) + "/domains"
	if d.api == "graph" {
		path = "/v1.0/security/alerts_v2/" + url.PathEscape(alertID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("defender answered %s", resp.Status)
	}
	var domains []string
	body := io.LimitReader(resp.Body, 1<<20)
	if d.api == "graph" {
		var answer graphAnswer
		if err := jsonv2.UnmarshalRead(body, &answer, jsontext.AllowDuplicateNames(true)); err != nil {
			return nil, fmt.Errorf("graph answer: %w", err)
		}
		domains = answer.hosts()
	} else {
		var answer domainsAnswer
		if err := json.NewDecoder(body).Decode(&answer); err != nil {
			return nil, fmt.Errorf("defender answer: %w", err)
		}
		for _, v := range answer.Value {
			domains = append(domains, v.Host)
		}
	}
	// Drain what the decoder left, so that the connection is reused.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	return domains, nil
}
