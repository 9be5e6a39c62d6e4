package main

import (
	"context"
	"fmt"

	"github.com/alert-domains/alert-domains/internal/buildinfo"
)

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "version\n\nPrints the version, commit and Go version the binary was built from.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("version takes no arguments (got %q)", fs.Arg(0))
	}
	bi := buildinfo.Read()
	_, err := fmt.Fprintf(e.stdout, "alert-domains %s\ncommit %s\n%s\n", bi.Version, bi.Commit, bi.GoVersion)
	return err
}
