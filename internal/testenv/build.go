package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
)

const natsServerModule = "github.com/nats-io/nats-server/v2"

// The builds, made at most once per test process.
var (
	natsServerBuild        = sync.OnceValues(buildNATSServer)
	alertDomainsBuild      = sync.OnceValues(func() (string, error) { return buildAlertDomains(raceEnabled()) })
	alertDomainsPlainBuild = sync.OnceValues(func() (string, error) { return buildAlertDomains(false) })
)

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	return ok && slices.Contains(info.Settings, debug.BuildSetting{Key: "-race", Value: "true"})
}

// built returns the path of a build, failing tb if it failed.
func built(tb testing.TB, name string, build func() (string, error)) string {
	tb.Helper()
	path, err := build()
	if err != nil {
		tb.Fatalf("testenv: %s binary: %v", name, err)
	}
	return path
}

// NATSServerBinary returns a nats-server built from the module version this
// module requires, cached per version under [os.UserCacheDir].
func NATSServerBinary(tb testing.TB) string {
	tb.Helper()
	return built(tb, "nats-server", natsServerBuild)
}

// BuildBinary returns the alert-domains executable, built with the race
// detector when the test binary has it.
func BuildBinary(tb testing.TB) string {
	tb.Helper()
	return built(tb, "alert-domains", alertDomainsBuild)
}

// BuildPlainBinary is BuildBinary without the race detector, for measuring
// the memory of the binary users run.
func BuildPlainBinary(tb testing.TB) string {
	tb.Helper()
	return built(tb, "alert-domains", alertDomainsPlainBuild)
}

func buildNATSServer() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	version, err := goOutput(root, "list", "-m", "-f", "{{.Version}}", natsServerModule)
	if err == nil && version == "" {
		err = fmt.Errorf("module %s has no version", natsServerModule)
	}
	if err != nil {
		return "", err
	}
	path := filepath.Join(cacheDir(), "nats-server-"+version, "nats-server")
	return path, goBuild(root, path, true, natsServerModule)
}

func buildAlertDomains(race bool) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	// One file per checkout and mode, so other checkouts never replace it.
	sum := sha256.Sum256([]byte(root))
	name := "alert-domains-" + hex.EncodeToString(sum[:6])
	args := []string{"./cmd/alert-domains"}
	if race {
		name += "-race"
		args = append([]string{"-race"}, args...)
	}
	path := filepath.Join(cacheDir(), name, "alert-domains")
	return path, goBuild(root, path, false, args...)
}

// goBuild builds beside path, under its lock, and renames the result to path,
// so no process ever runs a partly written file; with reuse it keeps a path that exists.
func goBuild(root, path string, reuse bool, args ...string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(path); reuse && err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, filepath.Base(path))
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(args, " "), err, output)
	}
	return os.Rename(out, path)
}

func moduleRoot() (string, error) {
	root, err := goOutput("", "list", "-m", "-f", "{{.Dir}}")
	if err == nil && root == "" {
		err = errors.New("the current directory is not inside a Go module")
	}
	return root, err
}

func goOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

// cacheDir is where built binaries are kept between test runs.
func cacheDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "alert-domains-testenv")
}
