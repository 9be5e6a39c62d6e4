package tests

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// natsRelay is a TCP relay from a loopback port to one NATS node. Cut
// closes every connection through it at once and refuses new ones until
// Mend, as a network partition would.
type natsRelay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cut    bool
	closed bool
	wg     sync.WaitGroup
}

// startRelay relays to target (host:port) until cleanup.
func startRelay(t *testing.T, target string) *natsRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &natsRelay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

// URL is the relay's NATS URL.
func (r *natsRelay) URL() string {
	return "nats://127.0.0.1:" + strconv.Itoa(r.ln.Addr().(*net.TCPAddr).Port)
}

// Cut closes the connections open through the relay, refuses new ones
// until Mend, and returns how many there were.
func (r *natsRelay) Cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = true
	return r.closeConns()
}

// Mend relays new connections again.
func (r *natsRelay) Mend() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = false
}

// closeConns closes every relayed connection (each is two) and returns how
// many there were; r.mu is held.
func (r *natsRelay) closeConns() int {
	n := len(r.conns) / 2
	for c := range r.conns {
		c.Close()
	}
	return n
}

func (r *natsRelay) close() {
	r.mu.Lock()
	r.closed = true
	r.closeConns()
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}

func (r *natsRelay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		r.wg.Add(1)
		go r.relay(client)
	}
}

// relay connects client to the target (a stopped node, or a cut: client
// is closed at once, and tries another server) and copies both ways until
// either side ends.
func (r *natsRelay) relay(client net.Conn) {
	defer r.wg.Done()
	r.mu.Lock()
	cut := r.cut
	r.mu.Unlock()
	if cut {
		client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", r.target, time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !r.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	client.Close()
	server.Close()
	<-done
	r.mu.Lock()
	delete(r.conns, client)
	delete(r.conns, server)
	r.mu.Unlock()
}

func (r *natsRelay) track(conns ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.cut {
		return false
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}
