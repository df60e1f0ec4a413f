// Package egress is the one place that decides where callqueue may send a
// request on an integration's behalf. Every URL an integration supplies
// (VA, ElevenLabs, CRM, LLM, pre-dial, sync-handlers) is reached through a
// client built here: the host is resolved, every resolved address is
// checked, the connection is pinned to a checked address (so a second DNS
// answer cannot swap it), and redirects to another host are refused.
//
// Link-local addresses (cloud metadata at 169.254.169.254, fe80::/10) are
// refused always; loopback, private and unspecified addresses are refused
// unless the operator allows them (CALLQUEUE_ALLOW_PRIVATE_EGRESS).
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Policy says which destinations are allowed.
type Policy struct {
	// AllowPrivate admits loopback, private (RFC 1918, fc00::/7) and
	// unspecified addresses: for local demos and tests, and deployments
	// whose peers live on the same private network.
	AllowPrivate bool
}

// ErrRefused is the cause of every refusal by the policy.
var ErrRefused = errors.New("destination refused by the egress policy")

// RefusedError names the refused address and why. Its text is for the
// operator's log; users see the short message of Describe.
type RefusedError struct {
	Addr   netip.Addr
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v: %s is %s", ErrRefused, e.Addr, e.Reason)
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// CheckAddr reports whether the policy allows connecting to addr.
func (p Policy) CheckAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return &RefusedError{Addr: addr, Reason: "not an address"}
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		return &RefusedError{Addr: addr, Reason: "link-local"}
	case addr.IsMulticast() || addr.IsInterfaceLocalMulticast():
		return &RefusedError{Addr: addr, Reason: "multicast"}
	case p.AllowPrivate:
		return nil
	case addr.IsLoopback():
		return &RefusedError{Addr: addr, Reason: "loopback"}
	case addr.IsPrivate():
		return &RefusedError{Addr: addr, Reason: "private"}
	case addr.IsUnspecified():
		return &RefusedError{Addr: addr, Reason: "unspecified"}
	}
	return nil
}

// CheckURL validates a URL when it is written to configuration: an
// http(s) URL without credentials in it, whose host, when it is a literal
// address (or localhost), the policy allows. Names are checked again,
// resolved, at every request.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		host = "127.0.0.1"
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if err := p.CheckAddr(addr); err != nil {
			var refused *RefusedError
			errors.As(err, &refused)
			return fmt.Errorf("must not point at a %s address", refused.Reason)
		}
	}
	return nil
}

// checkResolved checks every address a host resolved to: one refused
// address refuses the host, so that a name cannot mix a public address
// with an internal one and win a race.
func (p Policy) checkResolved(addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return &net.DNSError{Err: "no addresses", IsNotFound: true}
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}
