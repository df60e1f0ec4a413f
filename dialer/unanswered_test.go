package dialer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/egress"
)

// TestUnanswered: only a request that may have reached the platform and got
// no answer leaves the call's fate unknown.
func TestUnanswered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"our timeout", egress.Fail("originate", context.DeadlineExceeded), true},
		{"connection reset mid-request", egress.Fail("originate", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{"connection closed before the answer", egress.Fail("originate", io.ErrUnexpectedEOF), true},
		{"connection refused", egress.Fail("originate", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), false},
		{"connect timed out", egress.Fail("originate", &net.OpError{Op: "dial", Err: timeoutError{}}), false},
		{"name did not resolve", egress.Fail("originate", &net.DNSError{Err: "no such host", Name: "va.example"}), false},
		{"egress policy", egress.Fail("originate", fmt.Errorf("dial: %w", egress.ErrRefused)), false},
		{"5xx answer", &egress.StatusError{Op: "originate", Status: http.StatusBadGateway}, false},
		{"4xx answer", &dialer.RejectedError{Status: http.StatusUnprocessableEntity}, false},
		{"not a transport error", errors.New("unexpected answer"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := dialer.Unanswered(tt.err); got != tt.want {
			t.Errorf("%s (%v): Unanswered = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// timeoutError is a net error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestUnansweredOriginate: a VA slower than our client's timeout is an
// unanswered dial, a VA that is down is not.
func TestUnansweredOriginate(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	va := dialer.NewVA(egress.NewClient(egress.Policy{AllowPrivate: true}, 100*time.Millisecond))
	req := func(base string) dialer.Request {
		return dialer.Request{CallID: uuid.New(), Attempt: 1, Phone: "+380501112233", Secret: "t",
			Voice: config.Voice{Provider: "va", BaseURL: base, SipID: "s", AssistantID: "a"}}
	}
	if _, err := va.Originate(context.Background(), req(slow.URL)); !dialer.Unanswered(err) {
		t.Errorf("slow VA: %v, want unanswered", err)
	}
	if _, err := va.Originate(context.Background(), req(down.URL)); err == nil || dialer.Unanswered(err) {
		t.Errorf("VA down: %v, want a plain failure", err)
	}
}
