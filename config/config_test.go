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
		{map[string]string{"REQUEST_STREAM": "has space"}, "REQUEST_STREAM"},
		{map[string]string{"REQUEST_SUBJECT": "defender.>"}, "REQUEST_SUBJECT"},
		{map[string]string{"FAILURE_SUBJECT": "defender.alerts.domains.success"}, "FAILURE_SUBJECT"},
		{map[string]string{"NATS_TLS_CERT_FILE": "/tmp/c.pem"}, "NATS_TLS_CERT_FILE"},
		{map[string]string{"NATS_PASSWORD": "hunter2"}, "NATS_PASSWORD"},
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
	if cfg.Credential().ClientSecret != secret {
		t.Error("the credential does not get the secret")
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
