package crm

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AmbiguousError is a lookup that found several different records for one
// phone: none of them is taken.
type AmbiguousError struct {
	Matches int
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%d different CRM records match the phone", e.Matches)
}

// NoRecordError is an update with no record to write to: none matches the
// call's phone, or several different ones do (Matches > 1). It is
// permanent (retrying finds the same) and says nothing about the CRM's
// health; the update is kept, visible, as no_record.
type NoRecordError struct {
	Matches int
}

func (e *NoRecordError) Error() string {
	if e.Matches > 1 {
		return fmt.Sprintf("no CRM record for the phone: %d different records match it", e.Matches)
	}
	return "no CRM record for the phone"
}

// Unwrap makes a NoRecordError a PermanentError too.
func (e *NoRecordError) Unwrap() error { return &PermanentError{Message: e.Error()} }

// IsNoRecord reports whether err is a NoRecordError.
func IsNoRecord(err error) bool {
	var n *NoRecordError
	return errors.As(err, &n)
}

// RateLimitedError is a 429: the CRM asks for nothing more from this
// integration for After. It is retryable.
type RateLimitedError struct {
	After time.Duration
	// Held: nothing was sent, an earlier 429's pause still runs.
	Held bool
}

func (e *RateLimitedError) Error() string {
	if e.Held {
		return fmt.Sprintf("CRM asked for a pause (429): not called for another %s", e.After.Round(time.Second))
	}
	return fmt.Sprintf("CRM answered %d: %s (retry after %s)", http.StatusTooManyRequests,
		http.StatusText(http.StatusTooManyRequests), e.After)
}

// IsHeld reports whether err is a *RateLimitedError for which nothing was
// sent.
func IsHeld(err error) bool {
	var r *RateLimitedError
	return errors.As(err, &r) && r.Held
}

// RetryAfter is how long err asks to wait before the CRM is called again:
// a 429's Retry-After, else 0.
func RetryAfter(err error) time.Duration {
	var r *RateLimitedError
	if errors.As(err, &r) {
		return r.After
	}
	return 0
}

// Bounds of a Retry-After the adapters obey: a missing or unreadable one
// waits the least, and no answer can hold an integration's CRM updates for
// more than the most.
const (
	RetryAfterLeast = time.Second
	RetryAfterMost  = time.Hour
)

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		d = time.Duration(min(secs, int64(RetryAfterMost/time.Second))) * time.Second
	} else if at, err := http.ParseTime(h); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, RetryAfterLeast), RetryAfterMost)
}
