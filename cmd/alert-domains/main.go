// Command alert-domains turns Microsoft Defender alert IDs published to
// NATS JetStream into the domains each alert involves.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alert-domains/alert-domains/internal/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitOnSecondSignal(ctx, stop)
	err := protectProcess()
	if err == nil {
		err = run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// exitCode says err on w, without URL credentials, and returns its exit status.
func exitCode(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	if err != nil {
		fmt.Fprintf(w, "alert-domains: %s\n", redact.URLs(err.Error()))
	}
	return code
}

// exitOnSecondSignal exits at once, with status 1, on a second signal.
func exitOnSecondSignal(first context.Context, stop context.CancelFunc) {
	<-first.Done()
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	stop()
	sig := <-second
	fmt.Fprintf(os.Stderr, "alert-domains: second signal (%v) during shutdown, exiting at once\n", sig)
	os.Exit(1)
}
