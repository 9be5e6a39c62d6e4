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
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
