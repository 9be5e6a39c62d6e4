package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// protectProcess makes the process undumpable: /proc/<pid>/environ and
// /proc/<pid>/mem become readable by root only, so a result hook or any
// other process of the same user cannot read the secrets in the
// environment. Programs the process starts are not affected.
func protectProcess() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
