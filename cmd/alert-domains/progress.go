package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress is a line on stderr, on a terminal only, that says how far a long run is.
type progress struct {
	mu           sync.Mutex
	w            io.Writer // nil: no progress shown
	clear, drawn bool
	last         time.Time
}

func newProgress(stdout, stderr io.Writer) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	return &progress{w: stderr, clear: isTerminal(stdout)}
}

// draw shows text as the progress line; "" clears it.
func (p *progress) draw(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil || (text != "" && time.Since(p.last) < 100*time.Millisecond) || (text == "" && !p.drawn) {
		return
	}
	p.last, p.drawn = time.Now(), text != ""
	fmt.Fprintf(p.w, "\r\x1b[K%s", text)
}

// println writes a line of output, keeping the progress line out of it.
func (p *progress) println(w io.Writer, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn && (p.clear || w == p.w) {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(w, line)
}
