package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/config"
)

// TestRemovedVariableWarns: serve started with a variable the service no
// longer reads logs one warning naming it, and is not stopped by it (here
// it stops later, at the NATS server that is not there).
func TestRemovedVariableWarns(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := config.MapEnv(map[string]string{
		"COALESCE_SCOPE": "process", "NATS_URL": "nats://127.0.0.1:1", "LOG_FORMAT": "json", "HTTP_LISTEN": "",
		"AZURE_TENANT_ID": "6f1c2b9e-0000-4000-8000-000000000001", "AZURE_CLIENT_ID": "0a3e5f7d-0000-4000-8000-000000000002",
		"AZURE_CLIENT_SECRET": "s", "QUOTA_SCOPE": "process",
	})
	code := exitCode(&stderr, run(t.Context(), []string{"serve"}, env, strings.NewReader(""), &stdout, &stderr))
	if code == 2 {
		t.Fatalf("exit %d, a configuration error:\n%s", code, stderr.String())
	}
	if n := strings.Count(stderr.String(), `"level":"WARN","msg":"configuration: COALESCE_SCOPE`); n != 1 {
		t.Errorf("%d warnings naming COALESCE_SCOPE, want 1:\n%s", n, stderr.String())
	}
}
