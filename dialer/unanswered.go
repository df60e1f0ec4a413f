package dialer

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/callqueue/callqueue/egress"
)

// Unanswered reports whether a dial's error leaves it unknown whether the
// platform placed the call: the request may have arrived, its answer did
// not (our timeout ran out, the connection broke mid-request). A platform
// keeps such a call going, so the attempt must not be counted as failed
// and dialled again; its events or the watchdog settle it.
//
// A status answer (a 4xx, a 5xx) is the platform's word that it did not
// place the call, and a request that never left (the connection was
// refused, the name did not resolve, the egress policy said no) placed
// nothing: those are failures.
func Unanswered(err error) bool {
	var failure *egress.Failure
	if err == nil || !errors.As(err, &failure) {
		return false
	}
	var op *net.OpError
	var dns *net.DNSError
	var refused *egress.RefusedError
	switch {
	case errors.As(err, &op) && op.Op == "dial", errors.As(err, &dns),
		errors.As(err, &refused), errors.Is(err, egress.ErrRefused), errors.Is(err, egress.ErrRedirectRefused):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
