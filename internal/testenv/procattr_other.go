//go:build !linux

package testenv

import "syscall"

// procAttr is the default: children outlive a test process that dies.
func procAttr() *syscall.SysProcAttr { return nil }
