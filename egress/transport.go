package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/callqueue/callqueue/tracing"
)

// Dialer connects under a Policy: it resolves the host itself, checks
// every address, and dials only checked addresses. Its Control hook checks
// the address actually connected to as well, so nothing reaches the socket
// that the policy has not seen.
type Dialer struct {
	policy Policy
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	dialer net.Dialer
}

// NewDialer returns a Dialer for policy.
func NewDialer(policy Policy) *Dialer {
	d := &Dialer{policy: policy, lookup: net.DefaultResolver.LookupNetIP}
	d.dialer = net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: d.control}
	return d
}

// control runs after resolution, before connect, on the literal address.
func (d *Dialer) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address", ErrRefused)
	}
	return d.policy.CheckAddr(ap.Addr())
}

// DialContext resolves addr's host, checks every address and connects to
// the first that answers.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = d.lookup(ctx, "ip", host); err != nil {
		return nil, err
	}
	if err := d.policy.checkResolved(addrs); err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		conn, err := d.dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// NewTransport returns an http.Transport that connects through a Dialer
// for policy and ignores proxy environment variables (a proxy would be
// the only address the policy saw).
func NewTransport(policy Policy) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           NewDialer(policy).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// maxRedirects bounds a chain of same-host redirects.
const maxRedirects = 5

// ErrRedirectRefused is a redirect to another host.
var ErrRedirectRefused = errors.New("redirect to another host refused")

// SameHostRedirects is an http.Client CheckRedirect that follows a
// redirect only to the host (and port) of the first request.
func SameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	first := via[0].URL
	if req.URL.Host != first.Host || (req.URL.Scheme != first.Scheme && req.URL.Scheme != "https") {
		return ErrRedirectRefused
	}
	return nil
}

// NewClient returns an http.Client for policy: the policy's transport,
// same-host redirects only, and timeout for each request (0: none). Each
// request sends the trace context of its own context (traceparent) when
// tracing is on.
func NewClient(policy Policy, timeout time.Duration) *http.Client {
	return &http.Client{Transport: tracing.Transport(NewTransport(policy)), CheckRedirect: SameHostRedirects, Timeout: timeout}
}
