package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// newFlags makes the flag set of one command. Its usage text goes to stderr
// and starts with the synopsis.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: alert-domains %s\n", synopsis)
		if hasFlags(fs) {
			fmt.Fprintln(e.stderr, "\nflags:")
			fs.PrintDefaults()
		}
		fmt.Fprintln(e.stderr, "\nenvironment: see 'alert-domains help'")
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args; -h ends the command with status 0, a bad flag with
// status 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return &exitError{code: 0}
	}
	if err != nil {
		return usageErrorf("%s: %v", fs.Name(), err)
	}
	return nil
}
