package deploy_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The NATS configurations deploy/nats offers, with the default names.
const (
	socPermissions    = "nats/permissions.conf"
	tenantPermissions = "nats/tenants-permissions.conf"

	requestStream  = "DEFENDER_ALERT_DOMAIN_REQUESTS"
	resultStream   = "DEFENDER_ALERT_DOMAIN_RESULTS"
	requestSubject = "defender.alerts.domains.requests"
	successSubject = "defender.alerts.domains.success"
	failureSubject = "defender.alerts.domains.failure"
)

// resultSubjects are the result subjects, plain and of a tenant.
var resultSubjects = []string{successSubject, successSubject + ".contoso", failureSubject, failureSubject + ".contoso"}

// natsExample is nats-server running in this process on one of the
// configurations, with a key pair for each of its users.
type natsExample struct {
	url   string
	users map[string]nkeys.KeyPair
}

// startNATSExample runs nats-server on file as it is shipped, with only the
// listen address and the store directory replaced. Each user gets a new
// key pair whose public key is the variable <USER>_NKEY the file names.
func startNATSExample(t *testing.T, file string, users ...string) *natsExample {
	t.Helper()
	ex := &natsExample{users: make(map[string]nkeys.KeyPair)}
	for _, user := range users {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(user+"_NKEY", pub)
		ex.users[user] = kp
	}
	conf, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	for _, r := range []struct{ re, with string }{
		{`(?m)^listen: .*$`, "listen: 127.0.0.1:-1"},
		{`(?m)^(\s*)store_dir: .*$`, "${1}store_dir: " + jsonQuote(t, t.TempDir())},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(text) {
			t.Fatalf("%s: no line matches %s", file, r.re)
		}
		text = re.ReplaceAllString(text, r.with)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server on %s not ready", file)
	}
	ex.url = srv.ClientURL()
	return ex
}

func jsonQuote(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// natsUser is a connection as one user of the example, with the
// asynchronous errors the server sent it.
type natsUser struct {
	name string
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

// inboxPrefixes are the inboxes of permissions.conf's users who have their own.
var inboxPrefixes = map[string]string{"SIEM": "_INBOX_SIEM", "PLAYBOOK": "_INBOX_PLAYBOOK"}

// connect connects as user (with its inbox prefix); apiPrefix, when set, is
// the JetStream API prefix the user's account imports the service's API under.
func (ex *natsExample) connect(t *testing.T, user, apiPrefix string) *natsUser {
	t.Helper()
	kp, ok := ex.users[user]
	if !ok {
		t.Fatalf("no user %s", user)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	u := &natsUser{name: user, errs: make(chan error, 256)}
	u.nc, err = nats.Connect(ex.url, nats.Name("deploy test "+user), nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(cmp.Or(inboxPrefixes[user], "_INBOX")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case u.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("%s connects: %v", user, err)
	}
	t.Cleanup(u.nc.Close)
	if apiPrefix != "" {
		u.js, err = jetstream.NewWithAPIPrefix(u.nc, apiPrefix)
	} else {
		u.js, err = jetstream.New(u.nc)
	}
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// refused waits for the server's permissions violation for op
// ("Publish" or "Subscription") on subject.
func (u *natsUser) refused(t *testing.T, op, subject string) {
	t.Helper()
	want := op + ` to "` + subject + `"`
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-u.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: no permissions violation for %s", u.name, want)
		}
	}
}

// publishRefused publishes body on subject as u and waits for the server
// to refuse it.
func (u *natsUser) publishRefused(t *testing.T, subject string, body []byte) {
	t.Helper()
	if err := u.nc.PublishRequest(subject, u.nc.NewRespInbox(), body); err != nil {
		t.Fatalf("%s publishes %s: %v", u.name, subject, err)
	}
	u.refused(t, "Publish", subject)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// provision creates the request and result streams as the service does
// (the subjects it captures), as the service's user.
func provision(t *testing.T, svc *natsUser) (requests, results jetstream.Stream) {
	t.Helper()
	var err error
	requests, err = svc.js.CreateStream(ctxTimeout(t, 10*time.Second), jetstream.StreamConfig{
		Name:     requestStream,
		Subjects: []string{requestSubject, requestSubject + ".*"},
	})
	if err != nil {
		t.Fatalf("the service creates %s: %v", requestStream, err)
	}
	results, err = svc.js.CreateStream(ctxTimeout(t, 10*time.Second), jetstream.StreamConfig{
		Name:        resultStream,
		Subjects:    []string{successSubject, failureSubject, successSubject + ".*", failureSubject + ".*"},
		AllowDirect: true,
	})
	if err != nil {
		t.Fatalf("the service creates %s: %v", resultStream, err)
	}
	return requests, results
}

// forgedResult is what an attacker would like the cache to believe.
func forgedResult(subject string) []byte {
	return []byte(`{"status":"success","tenant":"contoso","alertId":"poison1","domains":["evil.attacker.example"],"subject":"` + subject + `"}`)
}

// TestOnlyTheServiceMayPublishResults runs nats-server on each example
// configuration as it is shipped: every user but the service's is refused
// on every result subject, plain and of a tenant (the server's own
// permissions violation, and nothing stored), and the service's user
// publishes there and has its results stored.
func TestOnlyTheServiceMayPublishResults(t *testing.T) {
	for _, tc := range []struct {
		file   string
		others map[string]string // user: its JetStream API prefix
	}{
		{socPermissions, map[string]string{"SIEM": "", "OPERATOR": "", "PLAYBOOK": ""}},
		{tenantPermissions, map[string]string{"CONTOSO": "JS.alerts.API", "FABRIKAM": "JS.alerts.API"}},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			users := []string{"ALERT_DOMAINS"}
			for u := range tc.others {
				users = append(users, u)
			}
			ex := startNATSExample(t, tc.file, users...)
			svc := ex.connect(t, "ALERT_DOMAINS", "")
			_, results := provision(t, svc)
			for user, prefix := range tc.others {
				u := ex.connect(t, user, prefix)
				for _, subj := range resultSubjects {
					u.publishRefused(t, subj, forgedResult(subj))
				}
			}
			for _, subj := range resultSubjects {
				body := []byte(`{"status":"success","alertId":"da1","domains":[],"subject":"` + subj + `"}`)
				ack, err := svc.js.Publish(ctxTimeout(t, 10*time.Second), subj, body)
				if err != nil {
					t.Fatalf("the service publishes %s: %v", subj, err)
				}
				if ack.Stream != resultStream {
					t.Fatalf("the service's %s stored in %q, want %s", subj, ack.Stream, resultStream)
				}
				m, err := results.GetMsg(ctxTimeout(t, 10*time.Second), ack.Sequence)
				if err != nil || m.Subject != subj || string(m.Data) != string(body) {
					t.Fatalf("stored result %d: %v %v", ack.Sequence, m, err)
				}
			}
			// A forged result would have been stored first: the service's
			// are the only ones.
			info, err := results.Info(ctxTimeout(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != uint64(len(resultSubjects)) || info.State.FirstSeq != 1 {
				t.Fatalf("%s holds %d messages from %d, want the service's %d from 1",
					resultStream, info.State.Msgs, info.State.FirstSeq, len(resultSubjects))
			}
		})
	}
}

// TestPermissionsExampleRoles checks what each user of the single-account
// example may do besides: SIEM connectors publish requests and read
// nothing; operators republish requests and read the streams, and are
// refused every JetStream call that writes, moves or deletes messages or
// touches the service's consumers; the playbook pulls and acknowledges its
// own durable consumer and makes none.
func TestPermissionsExampleRoles(t *testing.T) {
	ex := startNATSExample(t, socPermissions, "ALERT_DOMAINS", "SIEM", "OPERATOR", "PLAYBOOK")
	svc := ex.connect(t, "ALERT_DOMAINS", "")
	requests, results := provision(t, svc)
	ack, err := svc.js.Publish(ctxTimeout(t, 10*time.Second), successSubject+".contoso", []byte(`{"status":"success"}`))
	if err != nil {
		t.Fatal(err)
	}
	resultSeq := ack.Sequence

	t.Run("SIEM", func(t *testing.T) {
		siem := ex.connect(t, "SIEM", "")
		for _, subj := range []string{requestSubject, requestSubject + ".contoso"} {
			ack, err := siem.js.Publish(ctxTimeout(t, 10*time.Second), subj, []byte("da637472900382838869_1364969609"))
			if err != nil || ack.Stream != requestStream {
				t.Fatalf("the SIEM publishes %s: %v %v", subj, ack, err)
			}
		}
		// Nor anyone's inbox: there a pull brings results, and the service's requests.
		for _, subj := range []string{successSubject + ".contoso", "defender.alerts.domains.>", "_INBOX.>"} {
			if _, err := siem.nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
			siem.refused(t, "Subscription", subj)
		}
		siem.publishRefused(t, "$JS.API.STREAM.INFO."+resultStream, nil)
	})

	t.Run("operator", func(t *testing.T) {
		op := ex.connect(t, "OPERATOR", "")
		ack, err := op.js.Publish(ctxTimeout(t, 10*time.Second), requestSubject+".contoso", []byte("replayed"))
		if err != nil || ack.Stream != requestStream {
			t.Fatalf("the operator republishes a request: %v %v", ack, err)
		}
		// Reads: a stored request by sequence, results through an
		// ephemeral consumer, stream information.
		oreqs, err := op.js.Stream(ctxTimeout(t, 10*time.Second), requestStream)
		if err != nil {
			t.Fatalf("the operator reads %s: %v", requestStream, err)
		}
		if m, err := oreqs.GetMsg(ctxTimeout(t, 10*time.Second), ack.Sequence); err != nil || string(m.Data) != "replayed" {
			t.Fatalf("the operator gets request %d: %v %v", ack.Sequence, m, err)
		}
		c, err := op.js.OrderedConsumer(ctxTimeout(t, 10*time.Second), resultStream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatalf("the operator reads %s: %v", resultStream, err)
		}
		m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("the operator reads a result: %v", err)
		}
		if md, err := m.Metadata(); err != nil || md.Sequence.Stream != resultSeq {
			t.Fatalf("the operator read %v (%v), want result %d", md, err, resultSeq)
		}
		// Writes of any kind are refused.
		for _, subj := range []string{
			"$JS.API.STREAM.CREATE.FORGED",
			"$JS.API.STREAM.UPDATE." + resultStream,
			"$JS.API.STREAM.UPDATE." + requestStream,
			"$JS.API.STREAM.PURGE." + resultStream,
			"$JS.API.STREAM.DELETE." + resultStream,
			"$JS.API.STREAM.MSG.DELETE." + resultStream,
			"$JS.API.CONSUMER.CREATE." + requestStream + ".alert-domains",
			"$JS.API.CONSUMER.CREATE." + requestStream + ".alert-domains." + requestSubject,
			"$JS.API.CONSUMER.DELETE." + requestStream + ".alert-domains",
			"$JS.API.CONSUMER.DELETE." + requestStream + ".alert-domains-max-deliveries",
			"$JS.API.CONSUMER.DURABLE.CREATE." + requestStream + ".alert-domains",
			"$JS.API.CONSUMER.MSG.NEXT." + requestStream + ".alert-domains",
			"$JS.API.CONSUMER.MSG.NEXT." + requestStream + ".alert-domains-max-deliveries",
			"$JS.API.CONSUMER.MSG.NEXT." + resultStream + ".soc-playbook",
			"$KV.QUOTA_alert-domains_COOLDOWN.1",
			"alert_domains.quota.alert-domains.1m.key",
		} {
			op.publishRefused(t, subj, []byte(`{}`))
		}
		info, err := results.Info(ctxTimeout(t, 10*time.Second))
		if err != nil || info.State.Msgs != 1 {
			t.Fatalf("%s after the operator's refused writes: %+v %v", resultStream, info, err)
		}
		// `status` reads the shared quota's cooldowns, key by key.
		kv, err := svc.js.CreateOrUpdateKeyValue(ctxTimeout(t, 10*time.Second), jetstream.KeyValueConfig{Bucket: "QUOTA_alert-domains_COOLDOWN"})
		if err == nil {
			_, err = kv.Put(ctxTimeout(t, 10*time.Second), "registration", []byte(`{}`))
		}
		if err != nil {
			t.Fatal(err)
		}
		okv, err := op.js.KeyValue(ctxTimeout(t, 10*time.Second), "QUOTA_alert-domains_COOLDOWN")
		if err == nil {
			_, err = okv.Get(ctxTimeout(t, 10*time.Second), "registration")
		}
		if err != nil {
			t.Errorf("the operator reads a cooldown: %v", err)
		}
	})

	t.Run("playbook", func(t *testing.T) {
		if _, err := svc.js.CreateOrUpdateConsumer(ctxTimeout(t, 10*time.Second), resultStream, jetstream.ConsumerConfig{
			Durable: "soc-playbook", AckPolicy: jetstream.AckExplicitPolicy,
		}); err != nil {
			t.Fatalf("the service's user makes the playbook's consumer: %v", err)
		}
		pb := ex.connect(t, "PLAYBOOK", "")
		c, err := pb.js.Consumer(ctxTimeout(t, 10*time.Second), resultStream, "soc-playbook")
		if err != nil {
			t.Fatalf("the playbook binds its consumer: %v", err)
		}
		m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("the playbook pulls a result: %v", err)
		}
		if err := m.DoubleAck(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Fatalf("the playbook acknowledges a result: %v", err)
		}
		if _, err := pb.nc.SubscribeSync("_INBOX.>"); err != nil {
			t.Fatal(err)
		}
		pb.refused(t, "Subscription", "_INBOX.>")
		pb.publishRefused(t, "$JS.API.CONSUMER.CREATE."+resultStream+".other", []byte(`{}`))
		pb.publishRefused(t, requestSubject, []byte("da1"))
	})
	if m, err := requests.GetLastMsgForSubject(ctxTimeout(t, 10*time.Second), requestSubject); err != nil || string(m.Data) == "da1" {
		t.Errorf("last plain request %v %v, want the SIEM's", m, err)
	}
}
