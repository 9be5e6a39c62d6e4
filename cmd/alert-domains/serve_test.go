package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/config"
)

// TestServeEmbeddedAddressInUse: a second serve whose embedded NATS cannot
// listen fails at once, naming the cause and the variables that fix it.
func TestServeEmbeddedAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env := config.MapEnv(map[string]string{
		"NATS_URL": "", "NATS_EMBEDDED_LISTEN": taken.Addr().String(), "NATS_EMBEDDED_STORE_DIR": t.TempDir(),
		"HTTP_LISTEN": "", "LOG_FORMAT": "json", "QUOTA_SCOPE": "process",
		"AZURE_TENANT_ID": "6f1c2b9e-0000-4000-8000-000000000001", "AZURE_CLIENT_ID": "0a3e5f7d-0000-4000-8000-000000000002", "AZURE_CLIENT_SECRET": "s",
	})
	var stderr bytes.Buffer
	start := time.Now()
	code := exitCode(&stderr, run(t.Context(), []string{"serve"}, env, strings.NewReader(""), &bytes.Buffer{}, &stderr))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("serve took %v to give up", took)
	}
	out := stderr.String()
	if code != 1 || !strings.Contains(out, "address already in use") || !strings.Contains(out, "NATS_EMBEDDED_LISTEN") || !strings.Contains(out, "NATS_URL") {
		t.Errorf("exit %d, want 1 naming the address in use, NATS_EMBEDDED_LISTEN and NATS_URL:\n%s", code, out)
	}
}
