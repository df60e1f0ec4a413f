package egress

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
)

// ErrWouldLeave is what a test Dialer answers instead of connecting to an
// address outside loopback that the policy let through.
var ErrWouldLeave = errors.New("test dialer: connection would leave the machine")

// NewDialerResolving returns a Dialer whose names resolve through lookup,
// so that a name can stand for any address without DNS leaving the
// machine, and which connects to loopback only: an address the policy
// allows elsewhere is reported as ErrWouldLeave, never sent a packet.
func NewDialerResolving(policy Policy, lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)) *Dialer {
	d := NewDialer(policy)
	d.lookup = lookup
	d.dialer.Control = func(network, address string, c syscall.RawConn) error {
		if err := d.control(network, address, c); err != nil {
			return err
		}
		if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().Unmap().IsLoopback() {
			return ErrWouldLeave
		}
		return nil
	}
	return d
}
