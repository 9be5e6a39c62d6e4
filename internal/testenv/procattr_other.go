//go:build !linux

package testenv

import "syscall"

// procAttr is the default elsewhere: children of a test process that dies
// keep running.
func procAttr() *syscall.SysProcAttr { return nil }
