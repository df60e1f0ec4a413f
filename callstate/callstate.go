// Package callstate is the call lifecycle as plain Go: statuses, the events
// that move a call between them, and the retry policy. It does no I/O, so
// every transition — including late, duplicate and out-of-order events — is
// table-tested; the workers apply its decisions in one transaction with the
// call's history row.
package callstate

import (
	"time"

	"github.com/callqueue/callqueue/config"
)

// Status is where a call is in its lifecycle.
type Status string

// Call statuses (contract §3).
const (
	Queued          Status = "queued"
	Initiated       Status = "initiated"
	InProgress      Status = "in_progress"
	WaitingPostcall Status = "waiting_postcall"
	Completed       Status = "completed"
	RetryScheduled  Status = "retry_scheduled"
	Failed          Status = "failed"
	Cancelled       Status = "cancelled"
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{Queued, Initiated, InProgress, WaitingPostcall, Completed, RetryScheduled, Failed, Cancelled}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// HoldsSlot reports whether a call in s counts against the concurrency limit.
func (s Status) HoldsSlot() bool { return s == Initiated || s == InProgress }

// Terminal reports whether nothing can move a call out of s.
func (s Status) Terminal() bool { return s == Completed || s == Failed || s == Cancelled }

// Kind is what happened to a call.
type Kind string

// Event kinds.
const (
	// Dial: the dispatcher claimed a slot and is about to originate.
	Dial Kind = "dial"
	// DialAccepted: the dialler accepted the originate request.
	DialAccepted Kind = "dial_accepted"
	// DialFailed: the originate request failed (Reason says how).
	DialFailed Kind = "dial_failed"
	// DialAborted: the dial was not sent after all (the dialler's breaker
	// refused it): the call goes back to the queue and the attempt is not
	// counted.
	DialAborted Kind = "dial_aborted"
	// CallStart and CallEnd come from the dialler (media_start/media_end too).
	CallStart Kind = "call_start"
	CallEnd   Kind = "call_end"
	// InitiationFailed: the dialler could not connect (busy, no-answer, ...).
	InitiationFailed Kind = "initiation_failed"
	// Postcall: the agent's post-call report was processed.
	Postcall Kind = "postcall"
	// Timeout: the watchdog released a call that held its slot too long.
	Timeout Kind = "timeout"
	// RetryDue: a scheduled retry's time has come.
	RetryDue Kind = "retry_due"
	// Cancel: an operator cancelled the call; Reason, when set, is the
	// outcome (suppressed, ineligible).
	Cancel Kind = "cancel"
	// DialDeferred: the dial was held back before it was sent (the pre-dial
	// check did not answer): the call waits RetryAfter without spending the
	// attempt.
	DialDeferred Kind = "dial_deferred"
)

// Outcomes recorded on calls and attempts.
const (
	OutcomeShortCall = "short_call"
	OutcomeNoAnswer  = "no_answer"
	OutcomeBusy      = "busy"
	OutcomeDialError = "dial_error"
	OutcomeTimeout   = "timeout"
	OutcomeDialLost  = "dial_lost"
	OutcomeAnswered  = "answered"
	OutcomeCompleted = "completed"
	OutcomeCancelled = "cancelled"
	// OutcomeSuppressed: the number is on a suppression list.
	OutcomeSuppressed = "suppressed"
	// OutcomeIneligible: the pre-dial check answered eligible: false.
	OutcomeIneligible = "ineligible"
)

// Call is the part of a call the state machine decides on.
type Call struct {
	Status      Status
	Attempt     int
	MaxAttempts int
}

// Event is something that happened to a call.
type Event struct {
	Kind Kind
	// DurationSecs is the call's length, for CallEnd.
	DurationSecs float64
	// Reason is the failure's outcome for DialFailed, InitiationFailed and
	// Timeout (one of the Outcome constants).
	Reason string
	// RetryAfter is how long a DialDeferred call waits.
	RetryAfter time.Duration
}

// Decision is what an event does to a call.
type Decision struct {
	// Changed is false when the event is late, duplicate or out of order and
	// must change nothing.
	Changed bool
	From    Status
	To      Status
	// Attempt is the call's attempt number after the event.
	Attempt int
	// Outcome is set when the event ends an attempt or the call.
	Outcome string
	// NextRetryAt is set when To is RetryScheduled.
	NextRetryAt time.Time
	// Why explains an ignored event or a retry, for the call's history.
	Why string
}

// HoldsSlotChange reports +1 when the decision takes a slot, -1 when it
// frees one, 0 otherwise.
func (d Decision) HoldsSlotChange() int {
	switch {
	case !d.From.HoldsSlot() && d.To.HoldsSlot():
		return 1
	case d.From.HoldsSlot() && !d.To.HoldsSlot():
		return -1
	}
	return 0
}

// Next decides what ev does to c under the integration's call handling
// policy at time now.
func Next(c Call, ev Event, policy config.CallHandling, now time.Time) Decision {
	same := Decision{From: c.Status, To: c.Status, Attempt: c.Attempt}
	ignore := func(why string) Decision { same.Why = why; return same }
	move := func(to Status, outcome string) Decision {
		return Decision{Changed: true, From: c.Status, To: to, Attempt: c.Attempt, Outcome: outcome}
	}
	failAttempt := func(outcome string) Decision {
		if c.Attempt >= c.MaxAttempts {
			d := move(Failed, outcome)
			d.Why = "attempts exhausted"
			return d
		}
		d := move(RetryScheduled, outcome)
		d.NextRetryAt = now.Add(policy.RetryDelay(c.Attempt))
		d.Why = "retry after " + outcome
		return d
	}

	if c.Status.Terminal() {
		return ignore("call is " + string(c.Status))
	}
	if ev.Kind == Cancel {
		return move(Cancelled, orDefault(ev.Reason, OutcomeCancelled))
	}

	switch c.Status {
	case Queued:
		if ev.Kind == Dial {
			d := move(Initiated, "")
			d.Attempt = c.Attempt + 1
			return d
		}
	case Initiated, InProgress:
		switch ev.Kind {
		case DialAccepted:
			// Recorded (the dialler's id) but moves nothing: call_start may
			// already have arrived.
			same.Changed = true
			return same
		case DialAborted:
			if c.Status == InProgress {
				return ignore("dial aborted after call_start")
			}
			d := move(Queued, "")
			d.Attempt = max(c.Attempt-1, 0)
			d.Why = "dial not sent"
			return d
		case DialDeferred:
			if c.Status == InProgress {
				return ignore("dial deferred after call_start")
			}
			d := move(RetryScheduled, "")
			d.Attempt = max(c.Attempt-1, 0)
			d.NextRetryAt = now.Add(ev.RetryAfter)
			d.Why = "dial deferred"
			return d
		case DialFailed:
			if c.Status == InProgress {
				return ignore("dial failure after call_start")
			}
			return failAttempt(orDefault(ev.Reason, OutcomeDialError))
		case CallStart:
			if c.Status == InProgress {
				return ignore("duplicate call_start")
			}
			return move(InProgress, "")
		case CallEnd:
			if ev.DurationSecs < float64(policy.MinCallDurationSecs) {
				return failAttempt(OutcomeShortCall)
			}
			return move(WaitingPostcall, OutcomeAnswered)
		case InitiationFailed:
			return failAttempt(orDefault(ev.Reason, OutcomeNoAnswer))
		case Timeout:
			return failAttempt(orDefault(ev.Reason, OutcomeTimeout))
		case Postcall:
			// The post-call report overtook call_end: the call is over.
			return move(Completed, OutcomeCompleted)
		}
	case WaitingPostcall:
		if ev.Kind == Postcall {
			return move(Completed, OutcomeCompleted)
		}
	case RetryScheduled:
		if ev.Kind == RetryDue {
			return move(Queued, "")
		}
	}
	return ignore(string(ev.Kind) + " does not apply to a " + string(c.Status) + " call")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
