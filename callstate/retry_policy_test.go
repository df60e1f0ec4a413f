package callstate_test

import (
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// TestNextRetryPolicy: a failed attempt is retried by its outcome's own
// rule when call_handling.retry_policy has one, by retry_delays_secs
// otherwise, never beyond the call's max_attempts.
func TestNextRetryPolicy(t *testing.T) {
	t.Parallel()
	withPolicy := policy() // retry_delays_secs 300/900/3600
	withPolicy.RetryPolicy = &config.RetryPolicy{
		NoAnswer:  &config.RetryRule{MaxAttempts: 4, DelaysSecs: []int{1800, 7200}},
		Busy:      &config.RetryRule{MaxAttempts: 2, DelaysSecs: []int{60}},
		Voicemail: &config.RetryRule{MaxAttempts: 1},
		ShortCall: &config.RetryRule{MaxAttempts: 10}, // no delays of its own
		DialError: &config.RetryRule{MaxAttempts: 3, DelaysSecs: []int{0}},
	}
	short := callstate.Event{Kind: callstate.CallEnd, DurationSecs: 1}
	end := func(reason string) callstate.Event {
		return callstate.Event{Kind: callstate.CallEnd, Reason: reason, DurationUnknown: true}
	}
	tests := []struct {
		name        string
		policy      config.CallHandling
		attempt     int
		maxAttempts int
		ev          callstate.Event
		to          callstate.Status
		outcome     string
		rule        string
		delay       time.Duration
	}{
		{"default: no_answer uses retry_delays_secs", policy(), 1, 3, end("no_answer"), callstate.RetryScheduled, "no_answer", "retry_delays_secs", 300 * time.Second},
		{"default: busy exhausts at max_attempts", policy(), 3, 3, end("busy"), callstate.Failed, "busy", "retry_delays_secs", 0},
		{"no_answer: own delays", withPolicy, 1, 6, end("no_answer"), callstate.RetryScheduled, "no_answer", "retry_policy.no_answer", 1800 * time.Second},
		{"no_answer: last delay repeats", withPolicy, 3, 6, end("no_answer"), callstate.RetryScheduled, "no_answer", "retry_policy.no_answer", 7200 * time.Second},
		{"no_answer: own budget", withPolicy, 4, 6, end("no_answer"), callstate.Failed, "no_answer", "retry_policy.no_answer", 0},
		{"no_answer: the call's max_attempts caps the rule", withPolicy, 2, 2, end("no_answer"), callstate.Failed, "no_answer", "retry_policy.no_answer", 0},
		{"busy by initiation failure", withPolicy, 1, 6, callstate.Event{Kind: callstate.InitiationFailed, Reason: "busy"}, callstate.RetryScheduled, "busy", "retry_policy.busy", time.Minute},
		{"busy: own budget", withPolicy, 2, 6, end("busy"), callstate.Failed, "busy", "retry_policy.busy", 0},
		{"voicemail: never retried", withPolicy, 1, 6, end("voicemail"), callstate.Failed, "voicemail", "retry_policy.voicemail", 0},
		{"short_call: rule without delays uses retry_delays_secs", withPolicy, 2, 6, short, callstate.RetryScheduled, "short_call", "retry_policy.short_call", 900 * time.Second},
		{"call_end failed is a dial_error", withPolicy, 1, 6, end("failed"), callstate.RetryScheduled, "dial_error", "retry_policy.dial_error", 0},
		{"dial failure", withPolicy, 2, 6, callstate.Event{Kind: callstate.DialFailed}, callstate.RetryScheduled, "dial_error", "retry_policy.dial_error", 0},
		{"dial failure: own budget", withPolicy, 3, 6, callstate.Event{Kind: callstate.DialFailed}, callstate.Failed, "dial_error", "retry_policy.dial_error", 0},
		{"timeout has no rule", withPolicy, 1, 6, callstate.Event{Kind: callstate.Timeout}, callstate.RetryScheduled, "timeout", "retry_delays_secs", 300 * time.Second},
		{"post-call: voicemail", withPolicy, 1, 6, callstate.Event{Kind: callstate.Postcall, Reason: "voicemail", DurationSecs: 40}, callstate.Failed, "voicemail", "retry_policy.voicemail", 0},
		{"post-call: short", withPolicy, 1, 6, callstate.Event{Kind: callstate.Postcall, DurationSecs: 2}, callstate.RetryScheduled, "short_call", "retry_policy.short_call", 300 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := callstate.Call{Status: callstate.Initiated, Attempt: tt.attempt, MaxAttempts: tt.maxAttempts}
			d := callstate.Next(c, tt.ev, tt.policy, now)
			if !d.Changed || d.To != tt.to || d.Outcome != tt.outcome || d.Rule != tt.rule {
				t.Fatalf("got Changed=%v To=%s Outcome=%q Rule=%q, want %s %q %q", d.Changed, d.To, d.Outcome, d.Rule, tt.to, tt.outcome, tt.rule)
			}
			var wantAt time.Time
			if tt.to == callstate.RetryScheduled {
				wantAt = now.Add(tt.delay)
			}
			if !d.NextRetryAt.Equal(wantAt) {
				t.Errorf("NextRetryAt = %v, want %v", d.NextRetryAt, wantAt)
			}
		})
	}
}

// TestNextHowTheAttemptEnded: call_end's reason and missing durations, and
// post-calls judging the attempt when no call_end comes.
func TestNextHowTheAttemptEnded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		from    callstate.Status
		ev      callstate.Event
		to      callstate.Status
		outcome string
	}{
		{"call_end without duration or reason is answered, not short", callstate.InProgress,
			callstate.Event{Kind: callstate.CallEnd, DurationUnknown: true}, callstate.WaitingPostcall, callstate.OutcomeAnswered},
		{"call_end completed without duration", callstate.InProgress,
			callstate.Event{Kind: callstate.CallEnd, Reason: "completed", DurationUnknown: true}, callstate.WaitingPostcall, callstate.OutcomeAnswered},
		{"call_end completed but short", callstate.InProgress,
			callstate.Event{Kind: callstate.CallEnd, Reason: "completed", DurationSecs: 2}, callstate.RetryScheduled, callstate.OutcomeShortCall},
		{"call_end no_answer with a long duration", callstate.Initiated,
			callstate.Event{Kind: callstate.CallEnd, Reason: "no_answer", DurationSecs: 30}, callstate.RetryScheduled, callstate.OutcomeNoAnswer},
		{"call_end voicemail", callstate.InProgress,
			callstate.Event{Kind: callstate.CallEnd, Reason: "voicemail", DurationSecs: 12}, callstate.RetryScheduled, callstate.OutcomeVoicemail},
		{"post-call of a short conversation", callstate.Initiated,
			callstate.Event{Kind: callstate.Postcall, DurationSecs: 2}, callstate.RetryScheduled, callstate.OutcomeShortCall},
		{"post-call of a long conversation", callstate.InProgress,
			callstate.Event{Kind: callstate.Postcall, DurationSecs: 60}, callstate.Completed, callstate.OutcomeCompleted},
		{"post-call without metadata", callstate.InProgress,
			callstate.Event{Kind: callstate.Postcall, DurationUnknown: true}, callstate.Completed, callstate.OutcomeCompleted},
		{"post-call after a long call_end is not judged again", callstate.WaitingPostcall,
			callstate.Event{Kind: callstate.Postcall, DurationSecs: 2}, callstate.Completed, callstate.OutcomeCompleted},
		{"post-call deadline", callstate.WaitingPostcall,
			callstate.Event{Kind: callstate.PostcallTimeout}, callstate.Completed, callstate.OutcomeCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := callstate.Next(callstate.Call{Status: tt.from, Attempt: 1, MaxAttempts: 3}, tt.ev, policy(), now)
			if !d.Changed || d.To != tt.to || d.Outcome != tt.outcome {
				t.Fatalf("got Changed=%v To=%s Outcome=%q, want %s %q (why %q)", d.Changed, d.To, d.Outcome, tt.to, tt.outcome, d.Why)
			}
		})
	}
}

// TestNextLiveEvidenceWins: a dial's failure after call_start and a
// watchdog's stale dial_lost leave a live call where it is.
func TestNextLiveEvidenceWins(t *testing.T) {
	t.Parallel()
	live := callstate.Call{Status: callstate.InProgress, Attempt: 2, MaxAttempts: 3}
	d := callstate.Next(live, callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialError}, policy(), now)
	if !d.Changed || d.To != callstate.InProgress || d.HoldsSlotChange() != 0 || d.Outcome != "" {
		t.Fatalf("dial failure after call_start = %+v, want recorded, still in progress", d)
	}
	answered := callstate.Call{Status: callstate.Initiated, Attempt: 1, MaxAttempts: 3, Dialing: false}
	lost := callstate.Event{Kind: callstate.Timeout, Reason: callstate.OutcomeDialLost}
	if d := callstate.Next(answered, lost, policy(), now); d.Changed {
		t.Fatalf("dial_lost of an answered dial = %+v, want ignored", d)
	}
	dialing := answered
	dialing.Dialing = true
	if d := callstate.Next(dialing, lost, policy(), now); !d.Changed || d.To != callstate.RetryScheduled || d.Outcome != callstate.OutcomeDialLost {
		t.Fatalf("dial_lost of an unanswered dial = %+v, want a retry", d)
	}
	if d := callstate.Next(answered, callstate.Event{Kind: callstate.Timeout}, policy(), now); !d.Changed || d.Outcome != callstate.OutcomeTimeout {
		t.Fatalf("max-duration timeout = %+v, want applied", d)
	}
	// The dial's answer was lost but call_start came: the call is live.
	answerLost := callstate.Call{Status: callstate.InProgress, Attempt: 1, MaxAttempts: 3, Dialing: true}
	if d := callstate.Next(answerLost, lost, policy(), now); d.Changed {
		t.Fatalf("dial_lost of a call in progress = %+v, want ignored", d)
	}
}

// TestNextDialUnanswered: a dial that got no answer may have placed the
// call: it is recorded and the call keeps its slot and its attempt, also
// when it was cancelled meanwhile.
func TestNextDialUnanswered(t *testing.T) {
	t.Parallel()
	unanswered := callstate.Event{Kind: callstate.DialUnanswered}
	for _, c := range []callstate.Call{
		{Status: callstate.Initiated, Attempt: 1, MaxAttempts: 3, Dialing: true},
		{Status: callstate.InProgress, Attempt: 2, MaxAttempts: 3, Dialing: true},
		{Status: callstate.Cancelled, Attempt: 1, MaxAttempts: 3, Dialing: true, SlotHeld: true},
	} {
		d := callstate.Next(c, unanswered, policy(), now)
		if !d.Changed || d.To != c.Status || d.Attempt != c.Attempt || d.HoldsSlotChange() != 0 || d.ReleasesSlot || d.Outcome != "" {
			t.Errorf("%s call: unanswered dial = %+v, want recorded, nothing moved", c.Status, d)
		}
	}
	// The watchdog's dial_lost settles it.
	lost := callstate.Event{Kind: callstate.Timeout, Reason: callstate.OutcomeDialLost}
	if d := callstate.Next(callstate.Call{Status: callstate.Initiated, Attempt: 1, MaxAttempts: 3, Dialing: true}, lost, policy(), now); d.To != callstate.RetryScheduled {
		t.Errorf("dial_lost after an unanswered dial = %+v, want a retry", d)
	}
}

// TestNextLoweredMaxAttempts: a lowered max_attempts reaches calls waiting
// for their next attempt (contract §3): a waiting retry whose attempts
// reach it fails, a queued one fails instead of being dialled, and a
// changed retry policy moves a waiting retry to its new time.
func TestNextLoweredMaxAttempts(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	ended := now.Add(-time.Minute)
	changed := callstate.Event{Kind: callstate.PolicyChanged, Reason: callstate.OutcomeNoAnswer, EndedAt: ended}
	waiting := callstate.Call{Status: callstate.RetryScheduled, Attempt: 3, MaxAttempts: 2}
	if d := callstate.Next(waiting, changed, config.CallHandling{RetryDelaysSecs: []int{60}}, now); d.To != callstate.Failed ||
		d.Outcome != callstate.OutcomeNoAnswer {
		t.Errorf("waiting retry at attempt 3 of a lowered 2: %+v, want failed (no_answer)", d)
	}
	queued := callstate.Call{Status: callstate.Queued, Attempt: 3, MaxAttempts: 2}
	if d := callstate.Next(queued, callstate.Event{Kind: callstate.Dial}, config.CallHandling{}, now); d.To != callstate.Failed {
		t.Errorf("dial of a queued call at attempt 3 of 2: %+v, want failed", d)
	}
	stillRoom := callstate.Call{Status: callstate.RetryScheduled, Attempt: 1, MaxAttempts: 5}
	d := callstate.Next(stillRoom, changed, config.CallHandling{RetryDelaysSecs: []int{7200}}, now)
	if d.To != callstate.RetryScheduled || !d.NextRetryAt.Equal(ended.Add(2*time.Hour)) {
		t.Errorf("retry under a changed delay: %+v, want retry_scheduled at %v", d, ended.Add(2*time.Hour))
	}
}
