package testenv

import (
	"bytes"
	"strings"
	"sync"
)

// output collects the lines a child process writes, safe for concurrent use.
type output struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed, then replaced, when a line is added
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

// lineWriter splits one stream into lines; each stream needs its own.
type lineWriter struct {
	out     *output
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte("\n"))
		if !ok {
			return len(p), nil
		}
		w.out.add(string(bytes.TrimSuffix(line, []byte("\r"))))
		w.partial = rest
	}
}

// flush adds a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.out.add(string(w.partial))
		w.partial = nil
	}
}
