package config

import (
	"fmt"
	"time"
)

// Bounds of call_handling (contract §3). They are enforced when a value is
// written, and stored values are clamped to them when read, so that one
// tenant's numbers can never overflow a shared query or a time.Duration.
const (
	ConcurrencyLimitMax    = 1000
	MinCallDurationMaxSecs = 600
	MaxAttemptsMax         = 20
	RetryDelayMaxSecs      = 30 * 24 * 3600
	RetryDelaysMaxCount    = MaxAttemptsMax
	MaxCallDurationMinSecs = 10
	MaxCallDurationMaxSecs = 86400
)

func between(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return &FieldError{Field: field, Message: fmt.Sprintf("must be between %d and %d", lo, hi)}
	}
	return nil
}

// checkCallHandlingBounds names the first field outside its bounds.
func checkCallHandlingBounds(v CallHandling) error {
	for _, err := range []error{
		between("concurrency_limit", v.ConcurrencyLimit, 1, ConcurrencyLimitMax),
		between("min_call_duration_secs", v.MinCallDurationSecs, 0, MinCallDurationMaxSecs),
		between("max_attempts", v.MaxAttempts, 1, MaxAttemptsMax),
		between("max_call_duration_secs", v.MaxCallDurationSecs, MaxCallDurationMinSecs, MaxCallDurationMaxSecs),
	} {
		if err != nil {
			return err
		}
	}
	switch {
	case len(v.RetryDelaysSecs) == 0:
		return &FieldError{Field: "retry_delays_secs", Message: "must list at least one delay"}
	case len(v.RetryDelaysSecs) > RetryDelaysMaxCount:
		return &FieldError{Field: "retry_delays_secs", Message: fmt.Sprintf("must list at most %d delays", RetryDelaysMaxCount)}
	}
	for i, d := range v.RetryDelaysSecs {
		if err := between(fmt.Sprintf("retry_delays_secs[%d]", i), d, 0, RetryDelayMaxSecs); err != nil {
			return err
		}
	}
	return nil
}

// clamped brings a stored value inside the bounds: values written before
// the bounds existed (or straight into the database) must not break the
// dispatcher, the watchdog or the retry arithmetic.
func (c CallHandling) clamped() CallHandling {
	c.ConcurrencyLimit = min(max(c.ConcurrencyLimit, 1), ConcurrencyLimitMax)
	c.MinCallDurationSecs = min(max(c.MinCallDurationSecs, 0), MinCallDurationMaxSecs)
	c.MaxAttempts = min(max(c.MaxAttempts, 1), MaxAttemptsMax)
	c.MaxCallDurationSecs = min(max(c.MaxCallDurationSecs, MaxCallDurationMinSecs), MaxCallDurationMaxSecs)
	delays := make([]int, 0, min(len(c.RetryDelaysSecs), RetryDelaysMaxCount))
	for _, d := range c.RetryDelaysSecs[:min(len(c.RetryDelaysSecs), RetryDelaysMaxCount)] {
		delays = append(delays, min(max(d, 0), RetryDelayMaxSecs))
	}
	c.RetryDelaysSecs = delays
	return c
}

// retryDelay turns a delay in seconds into a Duration that cannot overflow.
func retryDelay(secs int) time.Duration {
	return time.Duration(min(max(secs, 0), RetryDelayMaxSecs)) * time.Second
}
