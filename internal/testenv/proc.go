package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PeakRSS returns the peak resident set size of the running process pid, in
// bytes, from the VmHWM line of /proc/<pid>/status (Linux). The value only
// grows during the life of a process, so one reading just before the process
// is stopped gives its peak.
func PeakRSS(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(value), " kB")
		if !ok {
			return 0, fmt.Errorf("testenv: unexpected VmHWM line %q", sc.Text())
		}
		n, err := strconv.ParseInt(kb, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("testenv: VmHWM of process %d: %w", pid, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("testenv: no VmHWM in /proc/%d/status", pid)
}

// PeakRSS returns the peak resident set size of the process so far, in
// bytes; see [PeakRSS]. It fails once the process has exited.
func (p *Process) PeakRSS() (int64, error) { return PeakRSS(p.PID()) }

// CPUTime returns the processor time, user and system, that the running
// process pid has used so far, from /proc/<pid>/stat (Linux, in units of
// 10 ms).
func CPUTime(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; utime and stime are
	// the 12th and 13th fields after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("testenv: unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("testenv: unexpected /proc/%d/stat", pid)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("testenv: /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// userHZ is the unit of the times in /proc/<pid>/stat, the same on every
// Linux system.
const userHZ = 100
