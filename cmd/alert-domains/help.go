package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alert-domains/alert-domains/config"
)

const helpUsage = `help [COMMAND | config | metrics | kinds] [--markdown]

Without an argument, lists the commands and every environment variable with
its default; with a command, shows its flags. config, metrics and kinds list
the variables, the metrics and the failure kinds; with --markdown, as the
pages of docs/reference.`

func runHelp(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return printUsage(e.stdout)
	}
	fs := e.flags("help")
	markdown := fs.Bool("markdown", false, "with config, metrics or kinds: the Markdown page of docs/reference")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	topic := fs.Arg(0)
	if fs.NArg() > 1 { // flags after the topic
		if err := parse(fs, fs.Args()[1:], true); err != nil {
			return err
		}
	}
	if topic == "" {
		return printUsage(e.stdout)
	}
	if c, ok := lookupCommand(topic); ok && c.name != "help" {
		return c.run(ctx, e, []string{"-h"})
	}
	r, err := referenceOf(topic)
	switch {
	case err != nil:
		return err
	case *markdown:
		return r.markdown(e.stdout, topic)
	}
	return r.text(e.stdout)
}

func printUsage(w io.Writer) error {
	fmt.Fprint(w, "alert-domains: the domains of Microsoft Defender alerts, as a NATS JetStream\nservice.\n\nusage: alert-domains <command> [flags] [arguments]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\n'alert-domains <command> -h' shows the flags of a command.\n\nenvironment (every command reads it; flags override it):\n")
	return config.Usage(w)
}
