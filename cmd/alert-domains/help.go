package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alert-domains/alert-domains/config"
)

const helpUsage = `help [COMMAND]

Without an argument, lists the commands and every environment variable with
its default; with a command, shows its flags.`

func runHelp(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return printUsage(e.stdout)
	}
	fs := e.flags("help")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if topic := fs.Arg(0); topic != "" {
		if c, ok := lookupCommand(topic); ok && c.name != "help" {
			return c.run(ctx, e, []string{"-h"})
		}
		return usageErrorf("help: unknown command %q", topic)
	}
	return printUsage(e.stdout)
}

func printUsage(w io.Writer) error {
	fmt.Fprint(w, "alert-domains: the domains of Microsoft Defender alerts, as a NATS JetStream\nservice.\n\nusage: alert-domains <command> [flags] [arguments]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\n'alert-domains <command> -h' shows the flags of a command.\n\nenvironment (every command reads it; flags override it):\n")
	return config.Usage(w)
}
