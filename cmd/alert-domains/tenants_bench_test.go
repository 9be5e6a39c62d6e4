package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/metrics"
)

// BenchmarkTenantsStart is serve's start-up work for a TENANTS_FILE of n
// tenants: reading the file, building every tenant's client and shared
// quota, and a reload of the same file; metrics.SetTenants apart.
// retained-MiB is the heap the tenants hold once built.
func BenchmarkTenantsStart(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			file, vars := tenantsFile(b, n)
			e := &env{lookupEnv: config.MapEnv(vars)}
			cfg, err := config.Load(e.lookupEnv)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("start", func(b *testing.B) {
				for b.Loop() {
					before := heapInUse()
					list, err := config.LoadTenants(file, cfg, e.lookupEnv)
					if err != nil {
						b.Fatal(err)
					}
					c, err := newTenantClients(cfg, e, list, true, slog.New(slog.DiscardHandler), metrics.New(), nil)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(heapInUse()-before)/(1<<20), "retained-MiB")
					runtime.KeepAlive(c)
				}
			})
			b.Run("reload", func(b *testing.B) {
				list, err := config.LoadTenants(file, cfg, e.lookupEnv)
				if err != nil {
					b.Fatal(err)
				}
				c, err := newTenantClients(cfg, e, list, true, slog.New(slog.DiscardHandler), metrics.New(), nil)
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, _, err := c.reload(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("metrics", func(b *testing.B) {
				list, err := config.LoadTenants(file, cfg, e.lookupEnv)
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					before := heapInUse()
					m := metrics.New()
					m.SetTenants(tenantAPIs(list))
					b.ReportMetric(float64(heapInUse()-before)/(1<<20), "retained-MiB")
					runtime.KeepAlive(m)
				}
			})
		})
	}
}

// tenantsFile writes a TENANTS_FILE of n tenants, each its own app
// registration with a secret file, and returns it with the environment.
func tenantsFile(b *testing.B, n int) (string, map[string]string) {
	b.Helper()
	dir := b.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("tenants:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - name: t%d\n    tenantId: 6f1c2b9e-0000-4000-8000-%012d\n    clientId: 0a3e5f7d-0000-4000-8000-000000000002\n    clientSecretFile: %s\n", i, i, secret)
	}
	file := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return file, map[string]string{"TENANTS_FILE": file}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
