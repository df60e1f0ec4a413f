package config

import (
	"fmt"
	"time"
)

// Outcomes that a retry_policy entry can name (contract §3): how an attempt
// ended when it is worth another try.
const (
	OutcomeNoAnswer  = "no_answer"
	OutcomeBusy      = "busy"
	OutcomeVoicemail = "voicemail"
	OutcomeShortCall = "short_call"
	OutcomeDialError = "dial_error"
)

// RetryOutcomes lists the outcomes a retry_policy may name, in the order
// they are shown.
var RetryOutcomes = []string{OutcomeNoAnswer, OutcomeBusy, OutcomeVoicemail, OutcomeShortCall, OutcomeDialError}

// Bounds of a retry rule (contract §3).
const (
	RetryRuleMaxAttemptsMax = 20
	RetryRuleDelaysMax      = 20
)

// RetryRule is the retry schedule for one outcome: the call is tried at
// most MaxAttempts times in all when an attempt ends this way (never more
// than the call's own max_attempts), waiting DelaysSecs[n-1] after the
// n-th attempt (the last delay repeats).
type RetryRule struct {
	MaxAttempts int   `json:"max_attempts"`
	DelaysSecs  []int `json:"delays_secs"`
}

// Delay is the wait after the given (1-based) attempt ended this way.
func (r RetryRule) Delay(attempt int) time.Duration {
	if len(r.DelaysSecs) == 0 {
		return 0
	}
	i := min(max(attempt-1, 0), len(r.DelaysSecs)-1)
	return time.Duration(r.DelaysSecs[i]) * time.Second
}

// RetryPolicy is call_handling.retry_policy: retries by outcome. An
// outcome without an entry uses retry_delays_secs and the call's
// max_attempts, as before the policy existed.
type RetryPolicy struct {
	NoAnswer  *RetryRule `json:"no_answer,omitempty"`
	Busy      *RetryRule `json:"busy,omitempty"`
	Voicemail *RetryRule `json:"voicemail,omitempty"`
	ShortCall *RetryRule `json:"short_call,omitempty"`
	DialError *RetryRule `json:"dial_error,omitempty"`
}

// Rule is the entry for outcome, or nil when it has none.
func (p *RetryPolicy) Rule(outcome string) *RetryRule {
	if p == nil {
		return nil
	}
	switch outcome {
	case OutcomeNoAnswer:
		return p.NoAnswer
	case OutcomeBusy:
		return p.Busy
	case OutcomeVoicemail:
		return p.Voicemail
	case OutcomeShortCall:
		return p.ShortCall
	case OutcomeDialError:
		return p.DialError
	}
	return nil
}

// retryRuleFields are the fields of one entry, for the unknown-field check.
var retryRuleFields = []string{"max_attempts", "delays_secs"}

func init() {
	// retry_policy's own fields join the unknown-field check of
	// call_handling here, beside the type they describe.
	knownFields[KeyCallHandling+".retry_policy"] = RetryOutcomes
	for _, o := range RetryOutcomes {
		knownFields[KeyCallHandling+".retry_policy."+o] = retryRuleFields
	}
}

// validateRetryPolicy checks every entry against the bounds of contract §3.
func validateRetryPolicy(p *RetryPolicy) error {
	for _, o := range RetryOutcomes {
		r := p.Rule(o)
		if r == nil {
			continue
		}
		field := "retry_policy." + o
		if r.MaxAttempts < 1 || r.MaxAttempts > RetryRuleMaxAttemptsMax {
			return &FieldError{Field: field + ".max_attempts", Message: fmt.Sprintf("must be between 1 and %d", RetryRuleMaxAttemptsMax)}
		}
		if len(r.DelaysSecs) > RetryRuleDelaysMax {
			return &FieldError{Field: field + ".delays_secs", Message: fmt.Sprintf("must list at most %d delays", RetryRuleDelaysMax)}
		}
		for i, d := range r.DelaysSecs {
			if d < 0 || d > RetryDelayMaxSecs {
				return &FieldError{Field: fmt.Sprintf("%s.delays_secs[%d]", field, i), Message: fmt.Sprintf("must be between 0 and %d", RetryDelayMaxSecs)}
			}
		}
	}
	return nil
}
