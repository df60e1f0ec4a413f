package faultnet_test

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/callqueue/callqueue/internal/faultnet"
)

// echo starts a server that sends back what it reads.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, wait time.Duration) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	return err
}

// TestBlackHole: after BlackHole, open and new connections stay open and
// silent (a read times out, never ends or is reset); after Restore, new
// connections work again.
func TestBlackHole(t *testing.T) {
	p, err := faultnet.Listen(t.Context(), echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	open, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := roundTrip(open, 5*time.Second); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.BlackHole()
	later, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("a black hole still accepts: %v", err)
	}
	defer later.Close()
	for name, c := range map[string]net.Conn{"open": open, "new": later} {
		if err := roundTrip(c, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s connection in the black hole: %v, want silence (a read deadline)", name, err)
		}
	}

	p.Restore()
	after, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if err := roundTrip(after, 5*time.Second); err != nil {
		t.Fatalf("a new connection after Restore: %v", err)
	}
	if err := roundTrip(open, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a connection that lost bytes answered after Restore: %v", err)
	}
}
