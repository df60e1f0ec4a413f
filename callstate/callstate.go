// Package callstate is the call lifecycle as plain Go: statuses, the events
// that move a call between them, and the retry policy. It does no I/O, so
// every transition — including late, duplicate and out-of-order events — is
// table-tested; the workers apply its decisions in one transaction with the
// call's history row.
package callstate

import (
	"slices"
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
	// DialUnanswered: the originate request got no answer (it timed out,
	// its connection broke): the platform may have placed the call, so
	// the attempt goes on until its events or the watchdog settle it.
	DialUnanswered Kind = "dial_unanswered"
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
	// Timeout: the watchdog released a call that held its slot too long
	// (Reason timeout), or whose dial never answered (Reason dial_lost).
	Timeout Kind = "timeout"
	// PostcallTimeout: the post-call report did not come within its
	// deadline; the call completes from what is known.
	PostcallTimeout Kind = "postcall_timeout"
	// RetryDue: a scheduled retry's time has come.
	RetryDue Kind = "retry_due"
	// Cancel: an operator cancelled the call; Reason, when set, is the
	// outcome (suppressed, ineligible).
	Cancel Kind = "cancel"
	// DialDeferred: the dial was held back before it was sent (the pre-dial
	// check did not answer): the call waits RetryAfter without spending the
	// attempt.
	DialDeferred Kind = "dial_deferred"
	// PolicyChanged: max_attempts or the retry policy changed while the
	// call waits for its next attempt; Reason is the outcome of its last
	// attempt ("" when its wait is not a retry's, such as a deferred dial)
	// and EndedAt when that attempt ended.
	PolicyChanged Kind = "policy_changed"
)

// Reported reports whether k is a report from the platform (a webhook) as
// opposed to a step of our own: a report is kept in the call's history even
// when it changes nothing, so that every acknowledged webhook can be found.
func (k Kind) Reported() bool {
	switch k {
	case CallStart, CallEnd, InitiationFailed, Postcall:
		return true
	}
	return false
}

// Outcomes recorded on calls and attempts. The retryable ones are the
// outcomes a call_handling.retry_policy entry can name.
const (
	OutcomeShortCall = config.OutcomeShortCall
	OutcomeNoAnswer  = config.OutcomeNoAnswer
	OutcomeBusy      = config.OutcomeBusy
	OutcomeVoicemail = config.OutcomeVoicemail
	OutcomeDialError = config.OutcomeDialError
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

// Outcomes lists every outcome a call can have (contract §3): a call's
// outcome is always one of them.
var Outcomes = []string{OutcomeAnswered, OutcomeShortCall, OutcomeNoAnswer, OutcomeBusy, OutcomeVoicemail, OutcomeDialError,
	OutcomeTimeout, OutcomeDialLost, OutcomeCompleted, OutcomeCancelled, OutcomeSuppressed, OutcomeIneligible}

// ValidOutcome reports whether o is one of Outcomes.
func ValidOutcome(o string) bool { return slices.Contains(Outcomes, o) }

// Call is the part of a call the state machine decides on.
type Call struct {
	Status      Status
	Attempt     int
	MaxAttempts int
	// Dialing: the current attempt's originate request has not answered.
	Dialing bool
	// SlotHeld: a cancelled call still live at the platform holds its slot.
	SlotHeld bool
}

// Event is something that happened to a call.
type Event struct {
	Kind Kind
	// DurationSecs is the call's length, for CallEnd and Postcall.
	DurationSecs float64
	// DurationUnknown: the report carried no duration. Such a call is not
	// short: only a known duration below the minimum is.
	DurationUnknown bool
	// Reason is how the attempt ended, for DialFailed, InitiationFailed,
	// Timeout, and CallEnd or Postcall when the dialler said (one of the
	// Outcome constants; empty or completed for an answered call).
	Reason string
	// RetryAfter is how long a DialDeferred call waits.
	RetryAfter time.Duration
	// EndedAt is when the attempt a PolicyChanged event reconsiders ended:
	// its retry is due from then.
	EndedAt time.Time
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
	// Rule names the retry rule that decided a failed attempt:
	// "retry_policy.<outcome>" or "retry_delays_secs".
	Rule string
	// KeepsSlot: the call was cancelled while live; having no way to hang
	// up, it keeps its slot until the call ends at the platform.
	KeepsSlot bool
	// ReleasesSlot: a cancelled call's conversation ended; its slot is free.
	ReleasesSlot bool
}

// HoldsSlotChange reports +1 when the decision takes a slot, -1 when it
// frees one, 0 otherwise.
func (d Decision) HoldsSlotChange() int {
	switch {
	case d.KeepsSlot:
		return 0
	case d.ReleasesSlot:
		return -1
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
	failAttemptAt := func(outcome string, now time.Time) Decision {
		limit, delay, rule := c.MaxAttempts, policy.RetryDelay(c.Attempt), "retry_delays_secs"
		if r := policy.RetryPolicy.Rule(outcome); r != nil {
			// An outcome's own budget counts every attempt of the call, and
			// never raises the call's max_attempts.
			limit, rule = min(limit, r.MaxAttempts), "retry_policy."+outcome
			if len(r.DelaysSecs) > 0 {
				delay = r.Delay(c.Attempt)
			}
		}
		if c.Attempt >= limit {
			d := move(Failed, outcome)
			d.Why, d.Rule = "attempts exhausted", rule
			return d
		}
		d := move(RetryScheduled, outcome)
		d.NextRetryAt = now.Add(delay)
		d.Why, d.Rule = "retry after "+outcome, rule
		return d
	}
	failAttempt := func(outcome string) Decision { return failAttemptAt(outcome, now) }
	// recorded: the event is kept (the dial's answer, its id) but moves
	// nothing.
	recorded := func(why string) Decision { same.Changed, same.Why = true, why; return same }

	if c.Status == Cancelled && c.SlotHeld {
		return afterCancel(c, ev, same)
	}
	if c.Status.Terminal() {
		return ignore("call is " + string(c.Status))
	}
	if ev.Kind == Cancel {
		d := move(Cancelled, orDefault(ev.Reason, OutcomeCancelled))
		// A call the pre-dial check refused was never dialled: its slot is
		// free at once.
		if c.Status.HoldsSlot() && ev.Reason != OutcomeIneligible {
			// No hang-up request exists (contract §5): the call may be live
			// at the platform until its call_end.
			d.KeepsSlot, d.Why = true, "cancelled while live: the slot is held until the call ends"
		}
		return d
	}

	if ev.Kind == PolicyChanged && (c.Status == Queued || c.Status == RetryScheduled) && c.Attempt > 0 {
		// The changed policy applies to every dial not made yet (contract
		// §3): the waiting attempt is judged again as when it failed.
		d := failAttemptAt(ev.Reason, ev.EndedAt)
		switch {
		case d.To == Failed:
			d.Why = "attempts exhausted under the changed policy"
			return d
		case c.Status == RetryScheduled && ev.Reason != "":
			d.Why = "retry rescheduled under the changed policy"
			return d
		}
		return ignore("the changed policy leaves the call as it is")
	}

	switch c.Status {
	case Queued:
		if ev.Kind == Dial {
			if c.MaxAttempts > 0 && c.Attempt >= c.MaxAttempts {
				// A lowered max_attempts reached a call already queued.
				d := move(Failed, "")
				d.Why = "attempts exhausted"
				return d
			}
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
				return recorded("dial aborted after call_start; the call is live")
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
		case DialUnanswered:
			// Recorded, and the call stays as it is: dialling (it keeps its
			// slot) until the platform reports on it, or the watchdog
			// releases it as dial_lost.
			return recorded("no answer to the dial; the call may be live")
		case DialFailed:
			if c.Status == InProgress {
				// The live evidence wins: the call keeps its slot and the
				// dial's answer is only recorded.
				return recorded("dial failure after call_start; the call is live")
			}
			return failAttempt(orDefault(ev.Reason, OutcomeDialError))
		case CallStart:
			if c.Status == InProgress {
				return ignore("duplicate call_start")
			}
			return move(InProgress, "")
		case CallEnd:
			if failed := unanswered(ev.Reason); failed != "" {
				return failAttempt(failed)
			}
			if short(ev, policy) {
				return failAttempt(OutcomeShortCall)
			}
			return move(WaitingPostcall, OutcomeAnswered)
		case InitiationFailed:
			return failAttempt(orDefault(ev.Reason, OutcomeNoAnswer))
		case Timeout:
			if ev.Reason == OutcomeDialLost && !c.Dialing {
				// The watchdog read the call before the dial answered.
				return ignore("the dial answered after the watchdog looked")
			}
			if ev.Reason == OutcomeDialLost && c.Status == InProgress {
				// call_start came: the dial reached the platform, only its
				// answer was lost. The call is live; max_call_duration_secs
				// still bounds it.
				return ignore("call_start came; the dial was not lost")
			}
			return failAttempt(orDefault(ev.Reason, OutcomeTimeout))
		case Postcall:
			// The post-call report overtook call_end (or there is none, as
			// when ElevenLabs dials): it judges the attempt like call_end.
			if failed := unanswered(ev.Reason); failed != "" {
				return failAttempt(failed)
			}
			if short(ev, policy) {
				return failAttempt(OutcomeShortCall)
			}
			return move(Completed, OutcomeCompleted)
		}
	case WaitingPostcall:
		switch ev.Kind {
		case Postcall:
			return move(Completed, OutcomeCompleted)
		case PostcallTimeout:
			d := move(Completed, OutcomeCompleted)
			d.Why = "no post-call report within its deadline"
			return d
		}
	case RetryScheduled:
		if ev.Kind == RetryDue {
			return move(Queued, "")
		}
	}
	return ignore(string(ev.Kind) + " does not apply to a " + string(c.Status) + " call")
}

// afterCancel decides the events of a call cancelled while live: whatever
// says the conversation is over (or never happened: the dial was aborted,
// deferred or refused by the pre-dial check before it was sent) frees its
// slot; the dial's answer is recorded; the rest changes nothing.
func afterCancel(c Call, ev Event, same Decision) Decision {
	if ev.Kind == Cancel && ev.Reason == OutcomeIneligible {
		same.Changed, same.ReleasesSlot, same.Why = true, true, "the cancelled call was not dialled"
		return same
	}
	switch ev.Kind {
	case CallEnd, Postcall, InitiationFailed, DialFailed, DialAborted, DialDeferred, Timeout:
		if ev.Kind == Timeout && ev.Reason == OutcomeDialLost && !c.Dialing {
			same.Why = "the dial answered after the watchdog looked"
			return same
		}
		same.Changed, same.ReleasesSlot, same.Why = true, true, "the cancelled call ended at the platform"
		return same
	case DialAccepted:
		same.Changed, same.Why = true, "dial answer of a cancelled call"
		return same
	case DialUnanswered:
		// It may be live: the slot stays held until its events or the
		// watchdog say otherwise.
		same.Changed, same.Why = true, "no answer to the dial of a cancelled call"
		return same
	}
	same.Why = "call is cancelled"
	return same
}

// short reports whether a reported duration makes the call a short call. A
// report without a duration says nothing about it.
func short(ev Event, policy config.CallHandling) bool {
	return !ev.DurationUnknown && ev.DurationSecs < float64(policy.MinCallDurationSecs)
}

// unanswered maps the reason a dialler gave for an ended call onto the
// outcome of a failed attempt, or "" when the call was answered.
func unanswered(reason string) string {
	switch reason {
	case OutcomeNoAnswer, OutcomeBusy, OutcomeVoicemail, OutcomeDialError:
		return reason
	case ReasonFailed:
		return OutcomeDialError
	}
	return ""
}

// ReasonFailed is call_end's reason for a call the network could not
// connect (contract §4); it ends the attempt as a dial_error.
const ReasonFailed = "failed"

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
