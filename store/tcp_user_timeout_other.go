//go:build !linux

package store

import (
	"syscall"
	"time"
)

// tcpUserTimeout is Linux's only: elsewhere keepalive and the query
// deadline bound a silent connection.
func tcpUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
