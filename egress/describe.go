package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
)

// Upstream errors are shown to tenants (call history, API answers), and a
// transport error's text names the address and port it tried, or echoes
// what the peer sent: shown back, that turns an integration URL into a
// port scanner. Failure and StatusError carry only our own short words;
// the cause stays reachable with errors.Unwrap, for the operator's log.

// Failure is a request that got no HTTP answer.
type Failure struct {
	Op    string // what was attempted, e.g. "originate"
	cause error
}

// Fail wraps a transport error of op.
func Fail(op string, err error) *Failure { return &Failure{Op: op, cause: err} }

func (e *Failure) Error() string { return e.Op + ": " + Describe(e.cause) }

// Unwrap returns the transport error.
func (e *Failure) Unwrap() error { return e.cause }

// StatusError is an HTTP answer outside 2xx; the body is not kept.
type StatusError struct {
	Op     string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: peer answered %d %s", e.Op, e.Status, http.StatusText(e.Status))
}

// Describe is a short, target-free description of a transport error.
func Describe(err error) string {
	var dnsErr *net.DNSError
	var refused *RefusedError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &refused), errors.Is(err, ErrRefused):
		return "destination refused by the egress policy"
	case errors.Is(err, ErrRedirectRefused):
		return "redirect to another host refused"
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "request timed out"
	case errors.As(err, &dnsErr):
		return "host name did not resolve"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "request timed out"
	}
	return "request failed"
}
