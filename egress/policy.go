// Package egress is the one place that decides where callqueue may send a
// request on an integration's behalf. Every URL an integration supplies
// (VA, ElevenLabs, CRM, LLM, pre-dial, sync-handlers) is reached through a
// client built here: the host is resolved, every resolved address is
// checked, the connection is pinned to a checked address (so a second DNS
// answer cannot swap it), and redirects to another host are refused.
//
// Link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata
// addresses are refused always; loopback, private, shared, benchmarking,
// reserved and unspecified addresses are refused unless the operator
// allows them (CALLQUEUE_ALLOW_PRIVATE_EGRESS). An IPv6 address that
// carries an IPv4 one (mapped, NAT64, 6to4, IPv4-compatible) is judged by
// the IPv4 address inside.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Policy says which destinations are allowed.
type Policy struct {
	// AllowPrivate admits loopback, private (RFC 1918, fc00::/7), shared
	// (100.64.0.0/10), benchmarking, reserved and unspecified addresses: for local demos and tests, and deployments
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

// metadataAddrs are the cloud providers' instance metadata services:
// credentials of the machine itself, refused whatever the policy.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, most others
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// internalRanges are refused unless private egress is allowed (contract
// §1): besides loopback, RFC 1918, fc00::/7 and unspecified addresses,
// which netip names itself.
var internalRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"}, // "this network"
	{netip.MustParsePrefix("100.64.0.0/10"), "shared"},  // CGNAT, Tailscale
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // and the broadcast address
}

// IPv6 ranges that carry an IPv4 address (besides ::ffff:0:0/96, which
// Unmap reads): where the packet ends up is that IPv4 address.
var (
	nat64Prefix      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix  = netip.MustParsePrefix("2002::/16")
	v4CompatiblePref = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 is the IPv4 address an IPv6 one carries, or addr itself.
func embeddedIPv4(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	if !addr.Is6() {
		return addr
	}
	b := addr.As16()
	switch {
	case nat64Prefix.Contains(addr):
		return netip.AddrFrom4([4]byte(b[12:16]))
	case sixToFourPrefix.Contains(addr):
		return netip.AddrFrom4([4]byte(b[2:6]))
	case v4CompatiblePref.Contains(addr) && !addr.IsLoopback() && !addr.IsUnspecified():
		return netip.AddrFrom4([4]byte(b[12:16]))
	}
	return addr
}

// CheckAddr reports whether the policy allows connecting to addr. An IPv6
// address that carries an IPv4 one is judged as that IPv4 address.
func (p Policy) CheckAddr(addr netip.Addr) error {
	shown := addr
	addr = embeddedIPv4(addr)
	refuse := func(reason string) error { return &RefusedError{Addr: shown, Reason: reason} }
	switch {
	case !addr.IsValid():
		return refuse("not an address")
	case slices.Contains(metadataAddrs, addr):
		return refuse("cloud metadata")
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		return refuse("link-local")
	case addr.IsMulticast() || addr.IsInterfaceLocalMulticast():
		return refuse("multicast")
	case p.AllowPrivate:
		return nil
	case addr.IsLoopback():
		return refuse("loopback")
	case addr.IsPrivate():
		return refuse("private")
	case addr.IsUnspecified():
		return refuse("unspecified")
	}
	for _, r := range internalRanges {
		if r.prefix.Contains(addr) {
			return refuse(r.reason)
		}
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
