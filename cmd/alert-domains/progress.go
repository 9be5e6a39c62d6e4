package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress shows how far a long run is, on a terminal: a line on stderr
// redrawn at most ten times a second, cleared before each line of output
// when stdout is the same terminal.
type progress struct {
	mu      sync.Mutex
	w       io.Writer // nil: no progress shown
	clear   bool
	total   int
	done    int
	verb    string
	drawn   bool
	lastDrw time.Time
}

func newProgress(stdout, stderr io.Writer) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{w: stderr, clear: isTerminal(stdout)}
}

func (p *progress) start(total int, dryRun bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.verb = total, "replaying"
	if dryRun {
		p.verb = "checking"
	}
}

func (p *progress) step() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.w == nil || time.Since(p.lastDrw) < 100*time.Millisecond {
		return
	}
	p.lastDrw = time.Now()
	fmt.Fprintf(p.w, "\r\x1b[K%s %d/%d", p.verb, p.done, p.total)
	p.drawn = true
}

// println writes a line of output, keeping the progress line out of it.
func (p *progress) println(w io.Writer, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn && p.clear {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(w, line)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}
