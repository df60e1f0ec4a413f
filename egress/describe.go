package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
)

// Outbound errors are shown to tenants (call history, API answers, the
// console), and a transport error's text names the address and port it
// tried, the resolver it asked, or echoes what the peer sent: shown back,
// that turns an integration URL into a port scanner. What is shown is
// Describe's word for the kind of failure; the error itself, cause and
// all, goes to the operator's log.

// Kinds of outbound failure, as Describe words them (contract §7).
const (
	KindTimeout    = "timeout"
	KindRefused    = "refused by egress policy"
	KindRedirect   = "redirect to another host refused"
	KindConnection = "connection failed"
	KindMalformed  = "malformed answer"
	KindCancelled  = "cancelled"
	KindFailed     = "failed"
)

// ErrMalformed is an answer that is not the shape the peer's API has.
var ErrMalformed = errors.New(KindMalformed)

// Described is an error that says itself what a tenant may read of it:
// only our own words, never the peer's.
type Described interface {
	error
	Describe() string
}

// Describe is what a tenant is shown of an outbound error: its kind
// (timeout, refused by egress policy, connection failed, bad status 503,
// malformed answer), never the address, port, resolver or bytes of the
// peer that the error's own text may carry.
func Describe(err error) string {
	var described Described
	var netErr net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &described): // *StatusError and our own errors say what they are
		return described.Describe()
	case errors.Is(err, ErrRefused):
		return KindRefused
	case errors.Is(err, ErrRedirectRefused):
		return KindRedirect
	case errors.Is(err, ErrMalformed):
		return KindMalformed
	case errors.Is(err, context.Canceled):
		return KindCancelled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.As(err, &netErr):
		return KindConnection
	}
	return KindFailed
}

// Failure is a request that got no HTTP answer.
type Failure struct {
	Op    string // what was attempted, e.g. "originate"
	cause error
}

// Fail wraps a transport error of op.
func Fail(op string, err error) *Failure { return &Failure{Op: op, cause: err} }

// Error is for the operator's log: it carries the transport's own words,
// but not the request's query, which may hold a person's phone number (a
// CRM lookup), nor credentials in the address.
func (e *Failure) Error() string {
	var ue *url.Error
	if errors.As(e.cause, &ue) {
		return fmt.Sprintf("%s: %s %q: %v", e.Op, ue.Op, withoutQuery(ue.URL), ue.Err)
	}
	return e.Op + ": " + e.cause.Error()
}

// withoutQuery is address without its query, fragment and user info.
func withoutQuery(address string) string {
	u, err := url.Parse(address)
	if err != nil {
		return "(unreadable address)"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String()
}

// Describe is the kind of the transport error.
func (e *Failure) Describe() string {
	switch kind := Describe(e.cause); kind {
	case KindFailed:
		return KindConnection // no answer came: whatever the cause, it is the connection's
	default:
		return kind
	}
}

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

// Describe is "bad status 503".
func (e *StatusError) Describe() string { return BadStatus(e.Status) }

// BadStatus is how an answer's status outside 2xx is described.
func BadStatus(status int) string { return fmt.Sprintf("bad status %d", status) }
