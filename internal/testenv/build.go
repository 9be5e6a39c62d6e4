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
	"strings"
	"sync"
	"testing"
)

const natsServerModule = "github.com/nats-io/nats-server/v2"

// builtOnce holds the result of a build made at most once per process.
type builtOnce struct {
	once sync.Once
	path string
	err  error
}

func (b *builtOnce) get(tb testing.TB, name string, build func() (string, error)) string {
	tb.Helper()
	b.once.Do(func() { b.path, b.err = build() })
	if b.err != nil {
		tb.Fatalf("testenv: %s binary: %v", name, b.err)
	}
	return b.path
}

var (
	natsServerBuild        builtOnce
	alertDomainsBuild      builtOnce
	alertDomainsPlainBuild builtOnce
)

// NATSServerBinary returns a nats-server built from the module version this
// module requires, cached per version under [os.UserCacheDir].
func NATSServerBinary(tb testing.TB) string {
	tb.Helper()
	return natsServerBuild.get(tb, "nats-server", buildNATSServer)
}

// BuildBinary returns the alert-domains executable, built with the race
// detector when the test binary has it.
func BuildBinary(tb testing.TB) string {
	tb.Helper()
	return alertDomainsBuild.get(tb, "alert-domains", func() (string, error) { return buildAlertDomains(raceEnabled) })
}

// BuildPlainBinary is BuildBinary without the race detector, for measuring
// the memory of the binary users run.
func BuildPlainBinary(tb testing.TB) string {
	tb.Helper()
	return alertDomainsPlainBuild.get(tb, "alert-domains", func() (string, error) { return buildAlertDomains(false) })
}

func buildNATSServer() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	version, err := goOutput(root, "list", "-m", "-f", "{{.Version}}", natsServerModule)
	if err != nil {
		return "", err
	}
	if version == "" {
		return "", fmt.Errorf("module %s has no version", natsServerModule)
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(cache, "nats-server-"+version, "nats-server")
	if isFile(path) {
		return path, nil
	}
	unlock, err := lockBuild(path)
	if err != nil {
		return "", err
	}
	defer unlock()
	if isFile(path) { // built by another test process meanwhile
		return path, nil
	}
	return path, goBuild(root, path, natsServerModule)
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// lockBuild takes the lock of the build of path; see lockFile.
func lockBuild(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return lockFile(path + ".lock")
}

func buildAlertDomains(race bool) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cache, err := cacheDir()
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
	path := filepath.Join(cache, name, "alert-domains")
	unlock, err := lockBuild(path)
	if err != nil {
		return "", err
	}
	defer unlock()
	return path, goBuild(root, path, args...)
}

// goBuild builds beside path and renames the result to path, so no process
// ever runs a partly written file.
func goBuild(root, path string, args ...string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, filepath.Base(path))
	cmd := exec.Command(goTool(), append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(args, " "), err, output)
	}
	return os.Rename(out, path)
}

// moduleRoot returns the directory of the current go.mod.
func moduleRoot() (string, error) {
	gomod, err := goOutput("", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("the current directory is not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

func goOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

// goTool returns the go command; go test puts its own first in PATH.
func goTool() string {
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	return "go"
}

func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "alert-domains-testenv")
	return dir, os.MkdirAll(dir, 0o755)
}
