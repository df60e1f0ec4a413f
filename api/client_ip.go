package api

import (
	"net"
	"net/http"
	"net/netip"
)

// clientIP is the address the audit log records for a request: the peer
// of the connection. Forwarded headers are not read here, since any
// client can send them; behind a reverse proxy this is the proxy's
// address until forwarded headers are trusted for configured proxies only.
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return addr.Unmap()
}
