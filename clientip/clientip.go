// Package clientip says who sent a request and how it reached callqueue:
// the client's address, the scheme and the host it asked for. Proxies in
// front of the service report these in X-Forwarded-For, X-Real-IP,
// X-Forwarded-Proto and X-Forwarded-Host; any client can send those
// headers too, so they are believed only when the direct peer is one of
// the operator's trusted proxies (CALLQUEUE_TRUSTED_PROXIES). Otherwise the
// client is the peer itself and the URL is the one the request names.
//
// Everything that needs the client's address (rate limits, the audit log)
// or the public base URL (documents that name the service) asks this
// package, so there is one place that decides whom to believe.
package clientip

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies is the set of peers whose forwarding headers are believed.
// The zero value trusts no one.
type Proxies struct {
	prefixes []netip.Prefix
}

// ParseProxies reads a list of CIDR prefixes or single addresses separated
// by commas or spaces ("10.0.0.0/8, 192.168.1.7, fd00::/8").
func ParseProxies(list string) (Proxies, error) {
	var p Proxies
	for _, field := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		prefix, err := netip.ParsePrefix(field)
		if err != nil {
			addr, aerr := netip.ParseAddr(field)
			if aerr != nil {
				return Proxies{}, fmt.Errorf("%q is neither an address nor a CIDR prefix", field)
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		if prefix.Addr().Is4In6() {
			prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
		}
		p.prefixes = append(p.prefixes, prefix.Masked())
	}
	return p, nil
}

// Trusts reports whether addr is a trusted proxy.
func (p Proxies) Trusts(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, prefix := range p.prefixes {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// Origin is who sent a request and the URL it was sent to.
type Origin struct {
	// IP is the client's address; invalid only when the peer's address
	// cannot be read (a request not made over TCP).
	IP     netip.Addr
	Scheme string
	Host   string
}

// BaseURL is the scheme and host the client used, without a trailing slash.
func (o Origin) BaseURL() string { return o.Scheme + "://" + o.Host }

// Resolve works out r's origin.
func (p Proxies) Resolve(r *http.Request) Origin {
	o := Origin{IP: peer(r), Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		o.Scheme = "https"
	}
	if !o.IP.IsValid() || !p.Trusts(o.IP) {
		return o
	}
	o.IP = p.forwardedFor(r, o.IP)
	if s := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); s == "http" || s == "https" {
		o.Scheme = s
	}
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
		o.Host = h
	}
	return o
}

// forwardedFor finds the client behind the trusted peer: walking
// X-Forwarded-For from the right (each proxy appends the address it was
// reached from), the first address that is not a trusted proxy. Entries to
// its left were written by the client and prove nothing. Without the
// header, X-Real-IP is the proxy's word for the client.
func (p Proxies) forwardedFor(r *http.Request, peerIP netip.Addr) netip.Addr {
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		if ip, ok := parseHop(r.Header.Get("X-Real-IP")); ok {
			return ip
		}
		return peerIP
	}
	client := peerIP
	for i := len(values) - 1; i >= 0; i-- {
		hops := strings.Split(values[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			ip, ok := parseHop(hops[j])
			if !ok {
				return client // garbage: believe no further than the last trusted hop
			}
			client = ip
			if !p.Trusts(ip) {
				return ip
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a port.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost accepts a host[:port] fit to put in a URL: the value ends up
// in documents that tell clients where to send requests.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`/\?#@"'<>`, c) {
			return false
		}
	}
	return true
}

type originKey struct{}

// Middleware resolves each request's origin once and keeps it in the
// request's context for ClientIP and BaseURL.
func (p Proxies) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := p.Resolve(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), originKey{}, o)))
	})
}

// FromRequest is r's origin as the Middleware resolved it; a request that
// did not pass through the Middleware trusts no proxy.
func FromRequest(r *http.Request) Origin {
	if o, ok := r.Context().Value(originKey{}).(Origin); ok {
		return o
	}
	return Proxies{}.Resolve(r)
}

// ClientIP is the address of the client that sent r.
func ClientIP(r *http.Request) netip.Addr { return FromRequest(r).IP }

// BaseURL is the scheme and host the client sent r to.
func BaseURL(r *http.Request) string { return FromRequest(r).BaseURL() }
