package connector_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// captureLogs collects what the standard logger and slog's default logger
// print (app) and what the Azure SDK logs (sdk) while the test runs.
func captureLogs(t *testing.T) (app, sdk func() string) {
	t.Helper()
	var (
		mu               sync.Mutex
		appBuf, azureBuf bytes.Buffer
	)
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return appBuf.Write(p)
	})
	oldOut, oldSlog := log.Writer(), slog.Default()
	log.SetOutput(w)
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	azlog.SetListener(func(ev azlog.Event, msg string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&azureBuf, "%s: %s\n", ev, msg)
	})
	t.Cleanup(func() {
		azlog.SetListener(nil)
		log.SetOutput(oldOut)
		slog.SetDefault(oldSlog)
	})
	read := func(b *bytes.Buffer) func() string {
		return func() string {
			mu.Lock()
			defer mu.Unlock()
			return b.String()
		}
	}
	return read(&appBuf), read(&azureBuf)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestSecretsNeverShow(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		appLogs, sdkLogs := captureLogs(t)
		srv := newServer(t, emulator.Config{SeedData: true, ClientSecret: testSecret})
		cred, err := connector.NewCredential(srv.Credential())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{emulator.ScopeOf(api)}})
		if err != nil {
			t.Fatal(err)
		}
		c := newClientWith(t, srv, api, cred, emulator.ScopeOf(api), connector.WithMaxBodyBytes(512), connector.WithTimeout(200*time.Millisecond),
			connector.WithBackoff(5*time.Millisecond, 10*time.Millisecond, 50*time.Millisecond))

		var errs []error
		lookup := func(ctx context.Context, c *connector.Client) {
			if _, err := c.Domains(ctx, alertID); err != nil {
				errs = append(errs, err)
			} else {
				t.Error("lookup succeeded, want a failure")
			}
		}
		// A URL in Graph's evidence that carries the secret as its
		// password, before a member that fails the answer.
		withPassword := `{"id":"` + alertID + `","evidence":[` +
			`{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"https://svc:` + testSecret + `@a.example/"},` +
			`{"@odata.type":"#microsoft.graph.security.urlEvidence","url":5}]}`
		answers := []emulator.Answer{
			{Status: 400, Body: errorBody(api, "InvalidInput")},
			{Status: 401, Body: errorBody(api, wantCode(api, 401))},
			{Status: 403, Body: errorBody(api, "Forbidden")},
			{Status: 404},
			{Status: 200, Body: "<html>" + tok.Token + "</html>"},
			{Status: 200, BodyBytes: 1024},
			{Status: 200, Body: withPassword},
		}
		if api == connector.MDE {
			answers = append(answers, emulator.Answer{Status: 200, Body: `{"value":[],"@odata.nextLink":"https://elsewhere.example/next"}`})
		}
		for _, a := range answers {
			answers := []emulator.Answer{a}
			if a.Status == 401 {
				answers = append(answers, a)
			}
			srv.Script(alertID, answers...)
			lookup(t.Context(), c)
		}
		srv.SetOutage(503)
		lookup(t.Context(), c)
		srv.SetOutage(429)
		lookup(t.Context(), c)
		srv.SetOutage(0)
		srv.Script(alertID, emulator.Answer{Delay: time.Hour}, emulator.Answer{Delay: time.Hour}, emulator.Answer{Delay: time.Hour})
		lookup(t.Context(), c)
		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		lookup(canceled, c)

		// A wrong secret and a wrong certificate password.
		wrong := srv.Credential()
		wrong.ClientSecret = testSecret + "-old"
		wrongCred, err := connector.NewCredential(wrong)
		if err != nil {
			t.Fatal(err)
		}
		lookup(t.Context(), newClientWith(t, srv, api, wrongCred, emulator.ScopeOf(api)))
		badCert := srv.Credential()
		badCert.ClientSecret, badCert.CertificatePath, badCert.CertificatePassword = "", writeCertificate(t), testPassword
		if _, err := connector.NewCredential(badCert); err != nil {
			errs = append(errs, err)
		} else {
			t.Error("a PEM certificate with a password was accepted")
		}

		if len(errs) < 12 {
			t.Fatalf("%d errors collected", len(errs))
		}
		for _, err := range errs {
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprint(err)} {
				for _, secret := range []string{testSecret, tok.Token, testPassword} {
					if strings.Contains(text, secret) {
						t.Errorf("error %q shows a secret or the token", text)
					}
				}
			}
		}
		out := appLogs()
		if out != "" {
			t.Errorf("something logged:\n%s", out)
		}
		out += sdkLogs()
		if !strings.Contains(out, "REDACTED") {
			t.Error("the Azure SDK log was not captured")
		}
		for _, secret := range []string{testSecret, tok.Token, testPassword} {
			if strings.Contains(out, secret) {
				t.Errorf("a log line shows a secret or the token:\n%s", out)
			}
		}
	})
}
