// Package faultnet is a TCP proxy on 127.0.0.1 that tests put in front of
// a real service (Postgres, NATS) to make the network between fail the way
// real networks do. BlackHole is the fault a failover leaves behind: the
// old host's packets vanish, so connections stay open, nothing sent is
// ever answered and nothing is reset. A client sees no error, only
// silence, until its own timeouts speak.
package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
)

// Proxy forwards connections from its own address to a target.
type Proxy struct {
	ln     net.Listener
	target string
	holed  atomic.Bool
	dialer net.Dialer

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen starts a proxy on 127.0.0.1 (a free port) to target (host:port).
func Listen(ctx context.Context, target string) (*Proxy, error) {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// ListenURL starts a proxy to the host of a URL (a database's, a NATS
// server's) and returns the same URL through the proxy.
func ListenURL(ctx context.Context, rawURL string) (*Proxy, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", err
	}
	p, err := Listen(ctx, u.Host)
	if err != nil {
		return nil, "", err
	}
	u.Host = p.Addr()
	return p, u.String(), nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// BlackHole drops every byte from now on, both ways, on the connections
// open and on those accepted later, which are accepted and kept but never
// reach the target. Nothing is closed or reset.
func (p *Proxy) BlackHole() { p.holed.Store(true) }

// Restore lets new connections through again. Those that lost bytes stay
// silent: their streams are broken, as after a real black hole.
func (p *Proxy) Restore() { p.holed.Store(false) }

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// track records c so that Close can close it; false once closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if p.holed.Load() {
		p.swallow(client)
		return
	}
	server, err := p.dialer.DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(server) {
		_ = client.Close()
		return
	}
	// Once either direction has dropped bytes, both stay silent: the
	// connection is broken for good.
	var broken atomic.Bool
	p.wg.Add(2)
	go p.pipe(server, client, &broken)
	go p.pipe(client, server, &broken)
}

// swallow reads and drops everything client sends until it goes away.
func (p *Proxy) swallow(client net.Conn) {
	_, _ = io.Copy(io.Discard, client)
	_ = client.Close()
}

func (p *Proxy) pipe(dst, src net.Conn, broken *atomic.Bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.holed.Load() {
				broken.Store(true)
			}
			if !broken.Load() {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					err = errors.Join(err, werr)
				}
			}
		}
		if err != nil {
			if broken.Load() {
				// A black hole answers nothing, not even the end: the other
				// side keeps its connection until its own timeouts.
				_ = src.Close()
				return
			}
			_ = src.Close()
			_ = dst.Close()
			return
		}
	}
}
