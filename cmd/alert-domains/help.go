package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alert-domains/alert-domains/config"
)

func runHelp(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			return printUsage(e.stdout)
		}
		for _, c := range commands() {
			if c.name == args[0] && c.name != "help" {
				return c.run(ctx, e, []string{"-h"})
			}
		}
		return usageErrorf("help: unknown command %q", args[0])
	}
	return printUsage(e.stdout)
}

func printUsage(w io.Writer) error {
	fmt.Fprint(w, `alert-domains: the domains of Microsoft Defender for Endpoint alerts, as a
NATS JetStream service.

usage: alert-domains <command> [flags] [arguments]

commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
'alert-domains <command> -h' shows the flags of a command.

environment (every command reads it; flags override it):
`)
	return config.Usage(w)
}
