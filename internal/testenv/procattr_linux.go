package testenv

import "syscall"

// procAttr makes the kernel kill a child when the test process dies, so that
// a test binary that crashes or is killed leaves no server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
