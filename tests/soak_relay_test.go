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

// natsRelay is a TCP relay from a loopback port to one NATS node. Sever
// closes every connection through it at once, as a network cut would; the
// client then reconnects through it.
type natsRelay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
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

// Sever closes the connections open through the relay and returns how
// many there were (each relayed connection is two).
func (r *natsRelay) Sever() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.conns) / 2
	for c := range r.conns {
		c.Close()
	}
	return n
}

func (r *natsRelay) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.ln.Close()
	r.Sever()
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

// relay connects client to the target (a stopped node: client is closed
// at once, and tries another server) and copies both ways until either
// side ends.
func (r *natsRelay) relay(client net.Conn) {
	defer r.wg.Done()
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
	if r.closed {
		return false
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}
