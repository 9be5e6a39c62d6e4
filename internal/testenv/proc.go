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

// PeakRSS returns the peak resident set size of process pid in bytes, from
// VmHWM in /proc/<pid>/status (Linux).
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

// PeakRSS returns the process's peak resident set size so far; see [PeakRSS].
func (p *Process) PeakRSS() (int64, error) { return PeakRSS(p.PID()) }

// CPUTime returns the user and system time process pid has used so far,
// from /proc/<pid>/stat (Linux).
func CPUTime(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// utime and stime are the 12th and 13th fields after "(command name)".
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

const userHZ = 100 // ticks per second in /proc/<pid>/stat on every Linux
