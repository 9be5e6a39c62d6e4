// Command alert-domains turns Microsoft Defender for Endpoint alert IDs
// published to NATS JetStream into the domains each alert involves.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := protectProcess(); err != nil {
		fmt.Fprintf(os.Stderr, "alert-domains: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitOnSecondSignal(ctx, stop)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitOnSecondSignal waits for the first SIGTERM or SIGINT (which starts
// the graceful shutdown), and exits at once, with status 1, on a second.
func exitOnSecondSignal(first context.Context, stop context.CancelFunc) {
	<-first.Done()
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	stop()
	sig := <-second
	fmt.Fprintf(os.Stderr, "alert-domains: second signal (%v) during shutdown, exiting at once\n", sig)
	os.Exit(1)
}
