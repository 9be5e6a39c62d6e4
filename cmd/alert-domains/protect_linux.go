package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// protectProcess makes the process undumpable, so that others cannot read /proc/<pid>/environ.
func protectProcess() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
