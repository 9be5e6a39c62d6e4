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
			fs.SetOutput(e.stderr)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
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

// parseFlags parses args; -h shows the usage and ends the command with
// status 0, a bad flag shows it and ends with status 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard) // the error is reported once, by run
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return &exitError{code: 0}
	}
	if err != nil {
		return usageErrorf("%s: %v", fs.Name(), err)
	}
	return nil
}
