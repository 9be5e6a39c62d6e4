package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
)

func envOf(kv map[string]string) config.Lookup { return config.MapEnv(kv) }

func TestLoadDefaults(t *testing.T) {
	cfg, err := config.Load(envOf(nil))
	if err != nil {
		t.Fatalf("Load with an empty environment: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"NATS_URL", cfg.NATSURL, ""},
		{"NATS_EMBEDDED_LISTEN", cfg.EmbeddedListen, "127.0.0.1:4222"},
		{"NATS_EMBEDDED_STORE_DIR", cfg.EmbeddedStoreDir, "./data/nats"},
		{"REQUEST_STREAM", cfg.RequestStream, "DEFENDER_ALERT_DOMAIN_REQUESTS"},
		{"REQUEST_SUBJECT", cfg.RequestSubject, "defender.alerts.domains.requests"},
		{"RESULT_STREAM", cfg.ResultStream, "DEFENDER_ALERT_DOMAIN_RESULTS"},
		{"SUCCESS_SUBJECT", cfg.SuccessSubject, "defender.alerts.domains.success"},
		{"FAILURE_SUBJECT", cfg.FailureSubject, "defender.alerts.domains.failure"},
		{"CONSUMER_NAME", cfg.ConsumerName, "alert-domains"},
		{"PROVISION", cfg.Provision, true},
		{"CONCURRENCY", cfg.Concurrency, 16},
		{"ACK_WAIT", cfg.AckWait, 30 * time.Second},
		{"MAX_DELIVER", cfg.MaxDeliver, 10},
		{"SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, 25 * time.Second},
		{"STREAM_REPLICAS", cfg.StreamReplicas, 1},
		{"DEFENDER_API", cfg.API, connector.Graph},
		{"DEFENDER_CLOUD", cfg.DefenderCloud, "public"},
		{"DEFENDER_API_URL", cfg.DefenderAPIURL, "https://graph.microsoft.com"},
		{"DEFENDER_SCOPE", cfg.DefenderScope, "https://graph.microsoft.com/.default"},
		{"AZURE_AUTHORITY_HOST", cfg.AzureAuthorityHost, "https://login.microsoftonline.com/"},
		{"DEFENDER_TIMEOUT", cfg.DefenderTimeout, 30 * time.Second},
		{"DEFENDER_RATE_LIMITS", fmt.Sprint(cfg.RateLimits), fmt.Sprint([]connector.Limit{{Count: 150, Window: time.Minute}})},
		{"RETRY_INITIAL_INTERVAL", cfg.RetryInitialInterval, time.Second},
		{"RETRY_MAX_INTERVAL", cfg.RetryMaxInterval, time.Minute},
		{"RETRY_MAX_ELAPSED", cfg.RetryMaxElapsed, 10 * time.Minute},
		{"DEFENDER_MANAGED_IDENTITY", cfg.DefenderManagedIdentity, false},
		{"HTTP_LISTEN", cfg.HTTPListen, "127.0.0.1:8080"},
		{"LOG_FORMAT", cfg.LogFormat, ""},
		{"LOG_LEVEL", cfg.LogLevel, "info"},
		{"EXEC_TIMEOUT", cfg.ExecTimeout, 10 * time.Second},
		{"CACHE_TTL", cfg.CacheTTL, time.Hour},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	off, err := config.Load(envOf(map[string]string{"HTTP_LISTEN": ""}))
	if err != nil || off.HTTPListen != "" {
		t.Errorf("HTTP_LISTEN set to empty: %q, %v; want disabled", off.HTTPListen, err)
	}
	if w := cfg.DuplicateWindow(); w < 2*time.Minute || w < cfg.AckWait*time.Duration(cfg.MaxDeliver) {
		t.Errorf("DuplicateWindow() = %v, shorter than the contract's minimum", w)
	}
}

func TestLoadClouds(t *testing.T) {
	tests := []struct {
		api, cloud, url, authority, limits string
	}{
		{"", "public", "https://graph.microsoft.com", "https://login.microsoftonline.com/", "[150/1m0s]"},
		{"graph", "gcc", "https://graph.microsoft.com", "https://login.microsoftonline.com/", "[150/1m0s]"},
		{"graph", "gcc-high", "https://graph.microsoft.us", "https://login.microsoftonline.us/", "[150/1m0s]"},
		{"graph", "dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us/", "[150/1m0s]"},
		{"mde", "public", "https://api.securitycenter.microsoft.com", "https://login.microsoftonline.com/", "[100/1m0s 1500/1h0m0s]"},
		{"mde", "gcc", "https://api-gcc.securitycenter.microsoft.us", "https://login.microsoftonline.com/", "[100/1m0s 1500/1h0m0s]"},
		{"mde", "gcc-high", "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us/", "[100/1m0s 1500/1h0m0s]"},
		{"mde", "dod", "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us/", "[100/1m0s 1500/1h0m0s]"},
	}
	for _, tt := range tests {
		t.Run(tt.api+"/"+tt.cloud, func(t *testing.T) {
			env := map[string]string{"DEFENDER_CLOUD": tt.cloud}
			if tt.api != "" {
				env["DEFENDER_API"] = tt.api
			}
			cfg, err := config.Load(envOf(env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DefenderAPIURL != tt.url || cfg.AzureAuthorityHost != tt.authority || cfg.DefenderScope != tt.url+"/.default" {
				t.Errorf("%s %s: api %q authority %q scope %q", tt.api, tt.cloud, cfg.DefenderAPIURL, cfg.AzureAuthorityHost, cfg.DefenderScope)
			}
			if got := fmt.Sprint(cfg.RateLimits); got != tt.limits {
				t.Errorf("%s %s: rate limits %s, want the API's default %s", tt.api, tt.cloud, got, tt.limits)
			}
		})
	}
	if _, err := config.Load(envOf(map[string]string{"DEFENDER_API": "defender"})); err == nil || !strings.Contains(err.Error(), "DEFENDER_API") {
		t.Errorf("DEFENDER_API=defender: %v, want an error naming the variable", err)
	}
	cfg, err := config.Load(envOf(map[string]string{
		"DEFENDER_API":     "mde",
		"DEFENDER_API_URL": "https://eu.api.security.microsoft.com",
		"DEFENDER_SCOPE":   "https://api.securitycenter.microsoft.com/.default",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefenderAPIURL != "https://eu.api.security.microsoft.com" {
		t.Errorf("regional API URL not taken: %q", cfg.DefenderAPIURL)
	}
	if cfg.DefenderScope != "https://api.securitycenter.microsoft.com/.default" {
		t.Errorf("scope must stay global with a regional host, got %q", cfg.DefenderScope)
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"ACK_WAIT": "thirty"}, "ACK_WAIT"},
		{map[string]string{"ACK_WAIT": "0s"}, "ACK_WAIT"},
		{map[string]string{"CONCURRENCY": "many"}, "CONCURRENCY"},
		{map[string]string{"CONCURRENCY": "0"}, "CONCURRENCY"},
		{map[string]string{"STREAM_REPLICAS": "0"}, "STREAM_REPLICAS"},
		{map[string]string{"STREAM_REPLICAS": "6"}, "STREAM_REPLICAS"},
		{map[string]string{"CONCURRENCY": "1025"}, "CONCURRENCY"},
		{map[string]string{"CONCURRENCY": "10000"}, "CONCURRENCY"},
		{map[string]string{"MAX_DELIVER": "0"}, "MAX_DELIVER"},
		{map[string]string{"MAX_DELIVER": "3000000", "ACK_WAIT": "1h"}, "MAX_DELIVER"}, // the duplicate window overflowed to 2m
		{map[string]string{"ACK_WAIT": "1000h"}, "ACK_WAIT"},
		{map[string]string{"PROVISION": "maybe"}, "PROVISION"},
		{map[string]string{"DEFENDER_CLOUD": "mooncake"}, "DEFENDER_CLOUD"},
		{map[string]string{"DEFENDER_API_URL": "http://api.securitycenter.microsoft.com"}, "DEFENDER_API_URL"},
		{map[string]string{"DEFENDER_API_URL": "api.securitycenter.microsoft.com"}, "DEFENDER_API_URL"},
		{map[string]string{"AZURE_AUTHORITY_HOST": "http://login.example"}, "AZURE_AUTHORITY_HOST"},
		{map[string]string{"DEFENDER_RATE_LIMITS": "100 per minute"}, "DEFENDER_RATE_LIMITS"},
		{map[string]string{"DEFENDER_RATE_LIMITS": "0/1m"}, "DEFENDER_RATE_LIMITS"},
		{map[string]string{"RETRY_MAX_INTERVAL": "10ms"}, "RETRY_MAX_INTERVAL"},
		{map[string]string{"CACHE_TTL": "-1h"}, "CACHE_TTL"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"LOG_LEVEL": "info+2"}, "LOG_LEVEL"}, // slog's offsets: not a documented level
		{map[string]string{"LOG_LEVEL": "debug-8"}, "LOG_LEVEL"},
		{map[string]string{"REQUEST_STREAM": "has space"}, "REQUEST_STREAM"},
		{map[string]string{"REQUEST_SUBJECT": "defender.>"}, "REQUEST_SUBJECT"},
		{map[string]string{"FAILURE_SUBJECT": "defender.alerts.domains.success"}, "FAILURE_SUBJECT"},
		{map[string]string{"NATS_TLS_CERT_FILE": "/tmp/c.pem"}, "NATS_TLS_CERT_FILE"},
		{map[string]string{"NATS_PASSWORD": "hunter2"}, "NATS_PASSWORD"},
		{map[string]string{"NATS_URL": "nats://a:4222,nats://b~c:4222"}, "NATS_URL"},
		{map[string]string{"NATS_URL": ","}, "NATS_URL"},
		{map[string]string{"NATS_CREDS_FILE": "/nonexistent/nats.creds"}, "NATS_CREDS_FILE"},
		{map[string]string{"NATS_TLS_CA_FILE": "/dev/zero"}, "NATS_TLS_CA_FILE"},
		{map[string]string{"NATS_EMBEDDED_LISTEN": "4222"}, "NATS_EMBEDDED_LISTEN"},
	}
	for _, tt := range tests {
		t.Run(tt.wantVar, func(t *testing.T) {
			_, err := config.Load(envOf(tt.env))
			if err == nil {
				t.Fatalf("Load(%v) succeeded, want an error naming %s", tt.env, tt.wantVar)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("error %q does not name %s", err, tt.wantVar)
			}
		})
	}
}

func TestConcurrencyMaximum(t *testing.T) {
	cfg, err := config.Load(envOf(map[string]string{"CONCURRENCY": "1024"}))
	if err != nil || cfg.Concurrency != config.MaxConcurrency {
		t.Fatalf("CONCURRENCY=1024: %+v, %v; want accepted", cfg, err)
	}
	_, err = config.Load(envOf(map[string]string{"CONCURRENCY": "1025"}))
	if err == nil || !strings.Contains(err.Error(), "CONCURRENCY: must be between 1 and 1024") {
		t.Errorf("CONCURRENCY=1025: %v, want an error naming the maximum", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	const secret = "S3cr3t-client-value-9f8e7d"
	cfg, err := config.Load(envOf(map[string]string{
		"AZURE_CLIENT_SECRET": secret,
		"AZURE_TENANT_ID":     "6f1c2b9e-0000-4000-8000-000000000001",
		"AZURE_CLIENT_ID":     "0a3e5f7d-0000-4000-8000-000000000002",
		"NATS_USER":           "svc",
		"NATS_PASSWORD":       secret,
		"NATS_TOKEN":          secret,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, *cfg); strings.Contains(out, secret) {
			t.Errorf("fmt %s prints the secret", format)
		}
	}
	if tn, err := cfg.EnvironmentTenant(); err != nil || tn.Credential.ClientSecret != secret {
		t.Errorf("the credential does not get the secret (%v)", err)
	}
	// A bad secret-typed value is not echoed either.
	_, err = config.Load(envOf(map[string]string{"NATS_PASSWORD": secret}))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("error %v echoes the secret", err)
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var b strings.Builder
	if err := config.Usage(&b); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"NATS_URL", "NATS_CREDS_FILE", "NATS_EMBEDDED_LISTEN", "REQUEST_STREAM", "CONSUMER_NAME", "PROVISION",
		"CONCURRENCY", "ACK_WAIT", "MAX_DELIVER", "SHUTDOWN_TIMEOUT", "STREAM_REPLICAS", "DEFENDER_CLOUD", "DEFENDER_API_URL", "DEFENDER_SCOPE",
		"DEFENDER_TIMEOUT", "DEFENDER_RATE_LIMITS", "RETRY_INITIAL_INTERVAL", "RETRY_MAX_ELAPSED", "AZURE_TENANT_ID",
		"AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "DEFENDER_MANAGED_IDENTITY",
		"HTTP_LISTEN", "LOG_FORMAT", "LOG_LEVEL", "ON_SUCCESS_EXEC", "ON_FAILURE_EXEC", "EXEC_TIMEOUT", "CACHE_TTL"} {
		if !strings.Contains(b.String(), v) {
			t.Errorf("usage does not list %s", v)
		}
	}
	if !strings.Contains(b.String(), "100/1m,1500/1h") {
		t.Error("usage does not show the DEFENDER_RATE_LIMITS default")
	}
}

// TestVariables: every variable has a name of its own, a group and a
// meaning, and Load reads each one.
func TestVariables(t *testing.T) {
	vars := config.Variables()
	seen := map[string]bool{}
	for _, v := range vars {
		if seen[v.Name] || v.Group == "" || v.Description == "" {
			t.Errorf("variable %+v: a duplicate, or without group or meaning", v)
		}
		seen[v.Name] = true
	}
	if len(vars) < 45 || vars[0].Name != "NATS_URL" || vars[0].Group != "NATS" {
		t.Errorf("%d variables, the first %+v", len(vars), vars[0])
	}
	read := map[string]bool{}
	if _, err := config.Load(func(k string) (string, bool) { read[k] = true; return "", false }); err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if !read[v.Name] {
			t.Errorf("Load does not read %s", v.Name)
		}
	}
}

// TestRemovedVariableWarns: a variable the service no longer reads is a
// warning for the caller to log, not an error, and its value is not in it.
func TestRemovedVariableWarns(t *testing.T) {
	cfg, err := config.Load(envOf(map[string]string{"COALESCE_SCOPE": "sideways-" + secretValue}))
	if err != nil {
		t.Fatalf("a removed variable set: %v", err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Variable != "COALESCE_SCOPE" || strings.Contains(cfg.Warnings[0].Message, secretValue) {
		t.Errorf("warnings %+v, want one naming COALESCE_SCOPE", cfg.Warnings)
	}
	if cfg, _ := config.Load(envOf(nil)); len(cfg.Warnings) != 0 {
		t.Errorf("warnings without removed variables: %+v", cfg.Warnings)
	}
}

// TestEnvironmentTenantCredential: the environment's one tenant follows
// the same rule as a tenant of the file (exactly one credential, the
// password with the certificate, a tenant and client ID of the right
// form), and names the variables.
func TestEnvironmentTenantCredential(t *testing.T) {
	ids := map[string]string{"AZURE_TENANT_ID": tenantGUID, "AZURE_CLIENT_ID": clientGUID}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range ids {
			env[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name string
		env  map[string]string
		want string // in the error; "" for none
	}{
		{"secret", with("AZURE_CLIENT_SECRET", secretValue), ""},
		{"managed identity without IDs", map[string]string{"DEFENDER_MANAGED_IDENTITY": "true"}, ""},
		{"no credential", with(), "credential: none: set exactly one of AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH"},
		{"two credentials", with("AZURE_CLIENT_SECRET", secretValue, "DEFENDER_MANAGED_IDENTITY", "true"), "DEFENDER_MANAGED_IDENTITY: more than one credential"},
		{"password without certificate", with("AZURE_CLIENT_SECRET", secretValue, "AZURE_CLIENT_CERTIFICATE_PASSWORD", secretValue),
			"AZURE_CLIENT_CERTIFICATE_PASSWORD: goes with AZURE_CLIENT_CERTIFICATE_PATH"},
		{"missing certificate", with("AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent/cert.pem"), "AZURE_CLIENT_CERTIFICATE_PATH: the file cannot be read"},
		{"tenant ID not a GUID or a domain", with("AZURE_CLIENT_SECRET", "x", "AZURE_TENANT_ID", secretValue), "AZURE_TENANT_ID: is not a GUID or a domain name"},
		{"client ID missing", with("AZURE_CLIENT_SECRET", "x", "AZURE_CLIENT_ID", ""), "AZURE_CLIENT_ID: is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			tn, err := cfg.EnvironmentTenant()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want == "":
				if tn.Name != config.DefaultTenant || !tn.Environment {
					t.Errorf("tenant %+v", tn.Name)
				}
			case err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %v, want %q", err, tc.want)
			case strings.Contains(err.Error(), secretValue):
				t.Errorf("error %v shows the secret", err)
			}
		})
	}
}
