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
	changed chan struct{} // closed, then replaced, when a line is added
	partial []byte        // the line being written, touched by Write and flush only
}

func newOutput() *output {
	return &output{changed: make(chan struct{})}
}

func (o *output) add(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lines = append(o.lines, line)
	close(o.changed)
	o.changed = make(chan struct{})
}

// since returns the lines from index from on, and a channel closed on the next.
func (o *output) since(from int) ([]string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var lines []string
	if from < len(o.lines) {
		lines = o.lines[from:len(o.lines):len(o.lines)]
	}
	return lines, o.changed
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
