package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
)

// permissionsExample is the NATS configuration the README offers providers.
const permissionsExample = "../deploy/nats/tenants-permissions.conf"

// TestTenantPermissionsExample runs a real nats-server on the example
// configuration as it is shipped (only the listen address and the store
// directory replaced): the service works under its user in its account,
// and a customer's user, in an account of its own, publishes requests for
// its own tenant only and reads only its own results, live and through the
// consumer the provider made for it. Every refusal is the server's own
// permissions violation, not a time-out; replies a customer sends elsewhere
// stay in its own account.
func TestTenantPermissionsExample(t *testing.T) {
	t.Parallel()
	seeds := map[string]nkeys.KeyPair{}
	nkeyVars := map[string]string{}
	for _, user := range []string{"ALERT_DOMAINS", "CONTOSO", "FABRIKAM"} {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		nkeyVars[user+"_NKEY"] = pub
		seeds[user] = kp
	}
	url := startExampleServer(t, nkeyVars)

	// The service runs under its user: it provisions, consumes, caches,
	// keeps the shared quota and answers presence questions; replay, status
	// and tail work under it too.
	emu, cert := testenv.StartEmulator(t, emulator.Config{Alerts: map[string][]string{alertTwo: {"www.example.com"}}})
	env := serviceEnv(emu, cert, url,
		"NATS_NKEY_FILE="+seedFile(t, seeds["ALERT_DOMAINS"]),
		"DEFENDER_RATE_LIMITS=100/1m,1500/1h", "QUOTA_SCOPE=shared", "CACHE_TTL=1h")
	svc := testenv.StartServe(t, env)
	_, sjs := nkeyConn(t, url, seeds["ALERT_DOMAINS"], nil)
	first := publish(t, sjs, alertTwo, nil)
	waitResults(t, sjs, 1, 30*time.Second)
	second := publish(t, sjs, alertTwo, nil)
	r := waitResults(t, sjs, 2, 30*time.Second)
	if r[first].Status != "success" || r[second].Cached == nil || !*r[second].Cached {
		t.Fatalf("service under its own user: %s; the second is not from the cache: %s", kinds(r), r[second].Raw)
	}
	code, replay := opsCommand(t, env, "replay", "--from-seq", fmt.Sprint(first), "--to-seq", fmt.Sprint(first))
	if code != 0 {
		t.Fatalf("replay under the service's user: exit %d:\n%s", code, replay)
	}
	if r := waitResults(t, sjs, 3, 30*time.Second); kinds(r) != "success=3 " {
		t.Fatalf("replayed request: %s", kinds(r))
	}
	code, status := opsCommand(t, env, "status")
	if code != 0 || !strings.Contains(status, "1 bound") {
		t.Fatalf("status under the service's user: exit %d:\n%s", code, status)
	}
	tail := testenv.StartService(t, testenv.BuildBinary(t), env, "tail", "--since", "1h", "--json")
	tail.WaitForLine(t, `"requestSequence":`+fmt.Sprint(second), 30*time.Second)
	svc.Stop(t)
	for name, out := range map[string]string{"serve": svc.Output(), "replay": replay, "status": status, "tail": tail.Output()} {
		if strings.Contains(strings.ToLower(out), "permissions violation") {
			t.Fatalf("%s was refused a subject under the service's user:\n%s", name, out)
		}
	}
	captureTenantSubjects(t, sjs)

	contosoErrs, fabrikamErrs := &violations{}, &violations{}
	cnc, cjs := customerConn(t, url, seeds["CONTOSO"], contosoErrs)
	fnc, fjs := customerConn(t, url, seeds["FABRIKAM"], fabrikamErrs)

	// A customer's request for its own tenant is stored.
	ack, err := cjs.Publish(ctxTimeout(t, 10*time.Second), requestSubject+".contoso", []byte(alertTwo))
	if err != nil {
		t.Fatalf("contoso publishes its own request: %v", err)
	}
	if ack.Stream != requestStream {
		t.Fatalf("contoso's request stored in %q, want %s", ack.Stream, requestStream)
	}
	reqs, err := sjs.Stream(t.Context(), requestStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := reqs.GetMsg(t.Context(), ack.Sequence); err != nil || m.Subject != requestSubject+".contoso" || string(m.Data) != alertTwo {
		t.Fatalf("stored request %d: %v %v", ack.Sequence, m, err)
	}

	// Live results: each customer subscribes to its own, then the service
	// publishes both customers' results interleaved.
	clive, err := cnc.SubscribeSync("defender.alerts.domains.*.contoso")
	if err != nil {
		t.Fatal(err)
	}
	flive, err := fnc.SubscribeSync("defender.alerts.domains.*.fabrikam")
	if err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{cnc, fnc} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	published := []string{
		successSubject + ".contoso", successSubject + ".fabrikam",
		failureSubject + ".fabrikam", failureSubject + ".contoso",
	}
	for _, subj := range published {
		tenant := subj[strings.LastIndexByte(subj, '.')+1:]
		body, _ := json.Marshal(map[string]string{"tenant": tenant, "alertId": alertTwo, "subject": subj})
		if _, err := sjs.Publish(t.Context(), subj, body); err != nil {
			t.Fatalf("service publishes %s: %v", subj, err)
		}
	}
	// The last result of each customer arrives after the other's, which the
	// same connection published earlier: once it is here, nothing else of
	// the other customer's can still come.
	expectLive(t, clive, successSubject+".contoso", failureSubject+".contoso")
	expectLive(t, flive, successSubject+".fabrikam", failureSubject+".fabrikam")

	// Through JetStream: each customer's durable consumer, made by the
	// provider, named after it and filtered to its own results, holds
	// exactly them.
	readOwnConsumer(t, sjs, cjs, "contoso", successSubject+".contoso", failureSubject+".contoso")
	readOwnConsumer(t, sjs, fjs, "fabrikam", successSubject+".fabrikam", failureSubject+".fabrikam")

	// What contoso may not do. Each refusal is the server's permissions
	// violation for that exact subject (or its JetStream API error).
	t.Run("publish", func(t *testing.T) {
		for _, subj := range []string{
			requestSubject + ".fabrikam", // another tenant's requests
			requestSubject,               // the tenant `default`
			successSubject + ".contoso",  // forging results
			failureSubject + ".fabrikam",
			"_ALERT_DOMAINS.REPLICAS." + requestStream + "." + consumerName,
		} {
			if _, err := cjs.Publish(ctxTimeout(t, time.Second), subj, []byte(alertTwo)); err == nil {
				t.Errorf("publish %s: stored", subj)
			}
			contosoErrs.wait(t, "Publish", subj)
		}
		if _, err := reqs.GetLastMsgForSubject(t.Context(), requestSubject+".fabrikam"); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("a request for fabrikam was stored: %v", err)
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		for _, subj := range []string{
			successSubject + ".fabrikam",
			"defender.alerts.domains.*.fabrikam",
			"defender.alerts.domains.>",
			successSubject + ".*",
			"$JS.ACK.>",
		} {
			sub, err := cnc.SubscribeSync(subj)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sub.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("subscribe %s: %v, want a permissions violation", subj, err)
			}
			contosoErrs.wait(t, "Subscription", subj)
		}
	})
	t.Run("consumers", func(t *testing.T) {
		// Customers make no consumers: a push consumer would deliver to any
		// subject its creator names, which no permission can check.
		api := customerAPI + ".CONSUMER.CREATE." + resultStream
		for _, c := range []struct {
			cfg     jetstream.ConsumerConfig
			subject string
		}{
			{jetstream.ConsumerConfig{Durable: "contoso", FilterSubject: "defender.alerts.domains.*.fabrikam"}, api + ".contoso.defender.alerts.domains.*.fabrikam"},
			{jetstream.ConsumerConfig{Durable: "contoso"}, api + ".contoso"},
			{jetstream.ConsumerConfig{Durable: "fabrikam", FilterSubject: "defender.alerts.domains.*.contoso"}, api + ".fabrikam.defender.alerts.domains.*.contoso"},
			{jetstream.ConsumerConfig{Durable: "contoso", FilterSubject: "defender.alerts.domains.*.contoso", DeliverSubject: requestSubject + ".fabrikam"},
				api + ".contoso.defender.alerts.domains.*.contoso"},
		} {
			c.cfg.AckPolicy = jetstream.AckExplicitPolicy
			if _, err := cjs.CreateOrUpdateConsumer(ctxTimeout(t, time.Second), resultStream, c.cfg); err == nil {
				t.Errorf("%+v: created", c.cfg)
			}
			contosoErrs.wait(t, "Publish", c.subject)
		}
		info, err := cjs.Consumer(t.Context(), resultStream, "contoso")
		if err != nil {
			t.Fatal(err)
		}
		if cfg := info.CachedInfo().Config; cfg.FilterSubject != "defender.alerts.domains.*.contoso" || cfg.DeliverSubject != "" {
			t.Errorf("contoso's consumer changed: %+v", cfg)
		}
	})
	t.Run("replies stay in the customer's account", func(t *testing.T) {
		// A reply subject is never checked against permissions: the stream's
		// acknowledgement, or the consumer's answer, goes wherever the
		// request says. Here it goes to the customer's own account.
		res, err := sjs.Stream(t.Context(), resultStream)
		if err != nil {
			t.Fatal(err)
		}
		before, err := res.GetLastMsgForSubject(t.Context(), successSubject+".fabrikam")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ subject, reply, body string }{
			{requestSubject + ".contoso", requestSubject + ".fabrikam", alertTwo},
			{requestSubject + ".contoso", successSubject + ".fabrikam", alertTwo},
			{customerAPI + ".CONSUMER.MSG.NEXT." + resultStream + ".contoso", requestSubject + ".fabrikam", `{"batch":1,"no_wait":true}`},
		} {
			if err := cnc.PublishRequest(c.subject, c.reply, []byte(c.body)); err != nil {
				t.Fatal(err)
			}
		}
		// Answered in order: once this one is stored, the answers above
		// have been sent.
		if _, err := cjs.Publish(ctxTimeout(t, 10*time.Second), requestSubject+".contoso", []byte(alertTwo)); err != nil {
			t.Fatal(err)
		}
		if m, err := reqs.GetLastMsgForSubject(t.Context(), requestSubject+".fabrikam"); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("contoso's reply was stored as a request for fabrikam: %v %v", m, err)
		}
		if m, err := res.GetLastMsgForSubject(t.Context(), successSubject+".fabrikam"); err != nil || m.Sequence != before.Sequence {
			t.Errorf("contoso's reply was stored as a result of fabrikam: %v %v", m, err)
		}
	})
	t.Run("other customers' consumers and the streams", func(t *testing.T) {
		if _, err := cjs.Consumer(ctxTimeout(t, time.Second), resultStream, "fabrikam"); err == nil {
			t.Error("contoso looked up fabrikam's consumer")
		}
		contosoErrs.wait(t, "Publish", customerAPI+".CONSUMER.INFO."+resultStream+".fabrikam")
		if _, err := cjs.Stream(ctxTimeout(t, time.Second), resultStream); err == nil {
			t.Error("contoso read the result stream's information")
		}
		contosoErrs.wait(t, "Publish", customerAPI+".STREAM.INFO."+resultStream)
		inbox := cnc.NewRespInbox()
		for _, c := range []struct{ subject, body string }{
			{"$JS.API.CONSUMER.MSG.NEXT." + resultStream + ".fabrikam", `{"batch":1}`},
			{"$JS.API.CONSUMER.DELETE." + resultStream + ".fabrikam", ``},
			{"$JS.API.STREAM.MSG.GET." + resultStream, `{"last_by_subj":"defender.alerts.domains.success.fabrikam"}`},
			{"$JS.API.DIRECT.GET." + resultStream, `{"last_by_subj":"defender.alerts.domains.success.fabrikam"}`},
			{"$JS.API.DIRECT.GET." + resultStream + ".defender.alerts.domains.success.fabrikam", ``},
			{"$JS.API.STREAM.PURGE." + resultStream, `{"filter":"defender.alerts.domains.success.contoso"}`},
			{"$JS.API.STREAM.MSG.DELETE." + resultStream, `{"seq":1}`},
			{"$JS.API.STREAM.DELETE." + resultStream, ``},
			{"$JS.API.STREAM.CREATE.COPY", `{"name":"COPY","sources":[{"name":"` + resultStream + `"}]}`},
			{"$JS.API.STREAM.NAMES", ``},
			{"$JS.API.CONSUMER.NAMES." + resultStream, ``},
			{"$JS.API.CONSUMER.LIST." + resultStream, ``},
			{"$JS.API.CONSUMER.DURABLE.CREATE." + resultStream + ".contoso", `{"stream_name":"` + resultStream + `","config":{"durable_name":"contoso"}}`},
			{"$JS.API.CONSUMER.CREATE." + resultStream, `{"stream_name":"` + resultStream + `","config":{}}`},
			{"$JS.ACK." + resultStream + ".fabrikam.1.1.1.0.0", ``},
			{successSubject + ".fabrikam", `{"status":"success","alertId":"forged","domains":["evil.example"]}`},
		} {
			if err := cnc.PublishRequest(c.subject, inbox, []byte(c.body)); err != nil {
				t.Fatal(err)
			}
			contosoErrs.wait(t, "Publish", c.subject)
		}
		// fabrikam's consumer still holds its results, unacknowledged by
		// anyone else.
		fc, err := fjs.Consumer(t.Context(), resultStream, "fabrikam")
		if err != nil {
			t.Fatal(err)
		}
		if got := fc.CachedInfo().AckFloor.Stream; got == 0 {
			t.Errorf("fabrikam's consumer lost its acknowledged results")
		}
		if n := len(fabrikamErrs.list()); n != 0 {
			t.Errorf("fabrikam saw %d violations: %v", n, fabrikamErrs.list())
		}
	})
}

// startExampleServer starts nats-server in-process on the example
// configuration, with a free port and a temporary store directory in place
// of its own, and the users' public keys, which the example reads from the
// environment ($NAME), written in from vars (NAME: key).
func startExampleServer(t *testing.T, vars map[string]string) string {
	t.Helper()
	conf, err := os.ReadFile(permissionsExample)
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	for _, r := range []struct{ re, with string }{
		{`(?m)^listen: .*$`, "listen: 127.0.0.1:-1"},
		{`(?m)^(\s*)store_dir: .*$`, "${1}store_dir: " + strconvQuote(t.TempDir())},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(text) {
			t.Fatalf("%s: no line matches %s", permissionsExample, r.re)
		}
		text = re.ReplaceAllString(text, r.with)
	}
	for name, value := range vars {
		ref := "$" + name
		if !strings.Contains(text, ref) {
			t.Fatalf("%s: no %s", permissionsExample, ref)
		}
		text = strings.ReplaceAll(text, ref, strconvQuote(value))
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: %v", permissionsExample, err)
	}
	return testenv.StartEmbedded(t, opts).ClientURL()
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// seedFile writes kp's seed where NATS_NKEY_FILE can name it.
func seedFile(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nkeyConn connects as kp's user, with permission errors recorded in errs.
func nkeyConn(t *testing.T, url string, kp nkeys.KeyPair, errs *violations) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	opts := []nats.Option{nats.Nkey(pub, kp.Sign), nats.PermissionErrOnSubscribe(true)}
	if errs != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs.add(err) }))
	}
	return testenv.Connect(t, url, opts...)
}

// customerAPI is the prefix under which a customer's account imports the
// JetStream API of the service's account.
const customerAPI = "JS.alerts.API"

// customerConn connects as a customer's user, with the JetStream API of the
// service's account under customerAPI.
func customerConn(t *testing.T, url string, kp nkeys.KeyPair, errs *violations) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, _ := nkeyConn(t, url, kp, errs)
	js, err := jetstream.NewWithAPIPrefix(nc, customerAPI)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// violations records the permission errors a connection was sent.
type violations struct {
	mu   sync.Mutex
	errs []error
}

func (v *violations) add(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err)
}

func (v *violations) list() []error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.errs)
}

// wait waits for the server's permissions violation for op ("Publish" or
// "Subscription") on subject.
func (v *violations) wait(t *testing.T, op, subject string) {
	t.Helper()
	want := op + ` to "` + subject + `"`
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
		return slices.ContainsFunc(v.list(), func(err error) bool {
			return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want)
		})
	}, "permissions violation for %s", want)
}

// expectLive reads the subjects wanted, in order, from sub, and then finds
// nothing else pending.
func expectLive(t *testing.T, sub *nats.Subscription, want ...string) {
	t.Helper()
	for _, subj := range want {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("live %s: %v", subj, err)
		}
		if m.Subject != subj {
			t.Fatalf("live: got %s, want %s: %s", m.Subject, subj, m.Data)
		}
	}
	if n, _, err := sub.Pending(); err != nil || n != 0 {
		t.Fatalf("live %s: %d more messages pending (%v)", sub.Subject, n, err)
	}
}

// readOwnConsumer has the provider (pjs) create the customer's durable
// consumer on the result stream, filtered to its own results, and the
// customer (js) read and acknowledge exactly the subjects wanted.
func readOwnConsumer(t *testing.T, pjs, js jetstream.JetStream, tenant string, want ...string) {
	t.Helper()
	if _, err := pjs.CreateOrUpdateConsumer(ctxTimeout(t, 10*time.Second), resultStream, jetstream.ConsumerConfig{
		Durable:       tenant,
		FilterSubject: "defender.alerts.domains.*." + tenant,
		AckPolicy:     jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatalf("the provider creates %s's consumer: %v", tenant, err)
	}
	c, err := js.Consumer(ctxTimeout(t, 10*time.Second), resultStream, tenant)
	if err != nil {
		t.Fatalf("%s looks up its consumer: %v", tenant, err)
	}
	batch, err := c.Fetch(len(want), jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Subject())
		if err := m.DoubleAck(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Fatalf("%s acknowledges %s: %v", tenant, m.Subject(), err)
		}
	}
	if batch.Error() != nil {
		t.Fatalf("%s fetch: %v", tenant, batch.Error())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s's consumer delivered %v, want %v", tenant, got, want)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Fatalf("%s's consumer: %d pending, %d unacknowledged after its results", tenant, info.NumPending, info.NumAckPending)
	}
}

// captureTenantSubjects makes sure the streams capture the per-tenant forms
// of their subjects (<subject>.<tenant>), as the service provisions them
// for tenants.
func captureTenantSubjects(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for stream, bases := range map[string][]string{
		requestStream: {requestSubject},
		resultStream:  {successSubject, failureSubject},
	} {
		st, err := js.Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		changed := false
		for _, base := range bases {
			if !slices.ContainsFunc(cfg.Subjects, func(s string) bool { return s == base+".*" || s == base+".>" }) {
				cfg.Subjects = append(cfg.Subjects, base+".*")
				changed = true
			}
		}
		if changed {
			if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
				t.Fatalf("stream %s: %v", stream, err)
			}
		}
	}
}
