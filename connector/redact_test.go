package connector_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

// TestHostileTokenEndpoint: a token endpoint that echoes the form (with the
// client secret or the client assertion) in its error, or sends a malformed
// token answer that the SDK quotes whole, never gets a secret, an assertion
// or an access token into the lookup's error.
func TestHostileTokenEndpoint(t *testing.T) {
	appLogs, _ := captureLogs(t)
	// A secret with characters that a form encodes.
	const secret = "Hostile+S3cret/with=odd&chars~7f3a"
	const accessToken = "AT-plain-access-token-0123456789abcdef"
	const jwtToken = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaSJ9.c2lnbmF0dXJlLXZhbHVl"
	tokenFile := filepath.Join(t.TempDir(), "token")
	const federated = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.ZmVkZXJhdGVkLXNpZ25hdHVyZQ"
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}
	certPath := writeCertificate(t)

	answers := []struct {
		name   string
		answer emulator.Answer
		kind   message.Kind
	}{
		{"error echoing the form", emulator.Answer{Status: 401, Body: `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret. Request: `, EchoForm: true}, message.KindUnauthorized},
		{"plain text echoing the form", emulator.Answer{Status: 400, Body: "rejected ", EchoForm: true}, message.KindUnauthorized},
		{"expires_in not a number", emulator.Answer{Body: `{"token_type":"Bearer","expires_in":"soon","access_token":"` + accessToken + `"}`}, ""},
		{"truncated", emulator.Answer{Body: `{"token_type":"Bearer","expires_in":3599,"access_token":"` + jwtToken + `"`}, ""},
		{"no lifetime", emulator.Answer{Body: `{"token_type": "Bearer", "access_token": "` + accessToken + `"}`}, ""},
		{"bearer in text", emulator.Answer{Status: 400, Body: "Authorization: Bearer " + accessToken}, message.KindUnauthorized},
	}
	credentials := []struct {
		name string
		set  func(*connector.CredentialConfig)
	}{
		{"client secret", func(c *connector.CredentialConfig) {}},
		{"certificate", func(c *connector.CredentialConfig) { c.ClientSecret, c.CertificatePath = "", certPath }},
		{"workload identity", func(c *connector.CredentialConfig) { c.ClientSecret, c.FederatedTokenFile = "", tokenFile }},
	}
	secrets := []string{secret, url.QueryEscape(secret), accessToken, jwtToken, federated, "client_assertion=eyJ"}
	for _, api := range apis {
		for _, cr := range credentials {
			for _, a := range answers {
				t.Run(string(api)+"/"+cr.name+"/"+a.name, func(t *testing.T) {
					srv := newServer(t, emulator.Config{SeedData: true, ClientSecret: secret})
					cfg := srv.Credential()
					cr.set(&cfg)
					cred, err := connector.NewCredential(cfg)
					if err != nil {
						t.Fatal(err)
					}
					// Every token request gets the hostile answer, however often
					// the SDK and the client retry.
					hostile := make([]emulator.Answer, 100)
					for i := range hostile {
						hostile[i] = a.answer
					}
					srv.ScriptToken(hostile...)
					c := newClientWith(t, srv, api, cred, emulator.ScopeOf(api),
						connector.WithBackoff(time.Millisecond, time.Millisecond, 5*time.Millisecond))
					_, err = c.Domains(t.Context(), alertID)
					e := asError(t, err)
					if a.kind != "" && e.Kind != a.kind {
						t.Errorf("kind %s, want %s: %v", e.Kind, a.kind, e)
					}
					for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e.Err)} {
						for _, s := range secrets {
							if strings.Contains(text, s) {
								t.Errorf("the error shows %q: %s", s, text)
							}
						}
					}
					if !strings.Contains(e.Error(), "[redacted]") && !strings.Contains(a.name, "truncated") && a.answer.Status != 0 {
						t.Errorf("nothing was redacted, the test proves less: %s", e)
					}
				})
			}
		}
	}
	if out := appLogs(); out != "" {
		t.Errorf("something logged:\n%s", out)
	}
}
