package testenv

import (
	"bytes"
	"strings"
	"sync"
)

// output collects the lines a child process writes, safe for concurrent use;
// it is both stdout and stderr, so os/exec calls Write from one goroutine.
type output struct {
	mu      sync.Mutex
	lines   []string
	partial []byte // the line being written, touched by Write and flush only
}

func (o *output) add(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lines = append(o.lines, line)
}

func (o *output) since(from int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lines[min(from, len(o.lines)):len(o.lines):len(o.lines)]
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.lines) == 0 {
		return ""
	}
	return strings.Join(o.lines, "\n") + "\n"
}

func (o *output) Write(p []byte) (int, error) {
	o.partial = append(o.partial, p...)
	for {
		line, rest, ok := bytes.Cut(o.partial, []byte("\n"))
		if !ok {
			return len(p), nil
		}
		o.add(string(bytes.TrimSuffix(line, []byte("\r"))))
		o.partial = rest
	}
}

// flush adds a last line that had no newline, once the process has exited.
func (o *output) flush() {
	if len(o.partial) > 0 {
		o.add(string(o.partial))
		o.partial = nil
	}
}
