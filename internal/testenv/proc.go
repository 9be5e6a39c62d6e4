package testenv

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// PeakRSS returns the process's peak resident set size so far in bytes,
// from VmHWM in /proc/<pid>/status (Linux).
func (p *Process) PeakRSS() (int64, error) {
	pid := p.PID()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	_, line, ok := strings.Cut(string(status), "\nVmHWM:")
	line, _, _ = strings.Cut(line, "\n")
	var kb int64
	if _, err := fmt.Sscanf(line, "%d kB", &kb); !ok || err != nil {
		return 0, fmt.Errorf("testenv: no VmHWM in /proc/%d/status (%v)", pid, err)
	}
	return kb * 1024, nil
}

// CPUTime returns the user and system time process pid has used so far,
// from /proc/<pid>/stat (Linux).
func CPUTime(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// utime and stime are the 12th and 13th fields after "(command name)".
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var utime, stime int64
	if len(fields) < 13 {
		return 0, fmt.Errorf("testenv: unexpected /proc/%d/stat", pid)
	}
	if _, err := fmt.Sscan(fields[11]+" "+fields[12], &utime, &stime); err != nil {
		return 0, fmt.Errorf("testenv: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * (time.Second / userHZ), nil
}

const userHZ = 100 // ticks per second in /proc/<pid>/stat on every Linux
