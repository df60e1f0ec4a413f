package callstate_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// now is the fixed instant every decision is taken at.
var now = time.Date(2026, time.January, 21, 14, 39, 12, 0, time.UTC)

// policy is the contract's default call_handling.
func policy() config.CallHandling {
	return config.Defaults()[config.KeyCallHandling].(config.CallHandling)
}

// kinds lists every event kind. TestKindsAndStatusesAreComplete checks it
// (and callstate.Statuses) against the constants declared in the package,
// so a new kind or status cannot slip past the cross-product table.
var kinds = []callstate.Kind{
	callstate.Dial, callstate.DialAccepted, callstate.DialAborted, callstate.DialFailed, callstate.DialUnanswered,
	callstate.CallStart, callstate.CallEnd, callstate.InitiationFailed,
	callstate.Postcall, callstate.PostcallTimeout, callstate.Timeout, callstate.RetryDue, callstate.Cancel, callstate.DialDeferred,
	callstate.PolicyChanged,
}

// declaredConsts returns the values of the string constants of the named type
// declared in the package's non-test sources.
func declaredConsts(t *testing.T, typeName string) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok || id.Name != typeName {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s constant %s is not a string literal", typeName, vs.Names[0])
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("found no %s constants", typeName)
	}
	return out
}

func TestKindsAndStatusesAreComplete(t *testing.T) {
	t.Parallel()
	for _, k := range declaredConsts(t, "Kind") {
		if !slices.Contains(kinds, callstate.Kind(k)) {
			t.Errorf("kind %q is declared but missing from the test's kinds list", k)
		}
	}
	declared := declaredConsts(t, "Status")
	for _, s := range declared {
		if !slices.Contains(callstate.Statuses, callstate.Status(s)) {
			t.Errorf("status %q is declared but missing from callstate.Statuses", s)
		}
	}
	if len(declared) != len(callstate.Statuses) {
		t.Errorf("callstate.Statuses has %d entries, %d statuses declared", len(callstate.Statuses), len(declared))
	}
	for _, s := range callstate.Statuses {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false", s)
		}
	}
	if callstate.Status("ringing").Valid() {
		t.Error(`"ringing".Valid() = true`)
	}
}

func TestStatusPredicates(t *testing.T) {
	t.Parallel()
	tests := map[callstate.Status]struct{ holdsSlot, terminal bool }{
		callstate.Queued:          {false, false},
		callstate.Initiated:       {true, false},
		callstate.InProgress:      {true, false},
		callstate.WaitingPostcall: {false, false},
		callstate.Completed:       {false, true},
		callstate.RetryScheduled:  {false, false},
		callstate.Failed:          {false, true},
		callstate.Cancelled:       {false, true},
	}
	for _, s := range callstate.Statuses {
		want, ok := tests[s]
		if !ok {
			t.Errorf("no expectation for status %q", s)
			continue
		}
		if got := s.HoldsSlot(); got != want.holdsSlot {
			t.Errorf("%s.HoldsSlot() = %v, want %v", s, got, want.holdsSlot)
		}
		if got := s.Terminal(); got != want.terminal {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, want.terminal)
		}
	}
}

// want is the expected decision for one (status, kind) pair of the cross
// product, for a call on attempt 1 of 3 under the default policy.
type want struct {
	changed bool
	to      callstate.Status // "" means: stays where it was
	attempt int              // attempt after the event
	outcome string
	slot    int // HoldsSlotChange
}

// stay is an event that must change nothing.
func stay() want { return want{attempt: 1} }

// record is an event that is recorded without moving the call.
func record() want { return want{changed: true, attempt: 1} }

func move(to callstate.Status, outcome string, slot int) want {
	return want{changed: true, to: to, attempt: 1, outcome: outcome, slot: slot}
}

// eventFor is the event of each kind used in the cross product: a call_end
// long enough to count, and failures without a reason.
func eventFor(k callstate.Kind) callstate.Event {
	ev := callstate.Event{Kind: k}
	if k == callstate.CallEnd {
		ev.DurationSecs = 60
	}
	if k == callstate.Postcall {
		ev.DurationUnknown = true // a report without metadata
	}
	if k == callstate.DialDeferred {
		ev.RetryAfter = time.Minute
	}
	if k == callstate.PolicyChanged {
		ev.Reason, ev.EndedAt = callstate.OutcomeNoAnswer, now
	}
	return ev
}

func TestNextCrossProduct(t *testing.T) {
	t.Parallel()
	const (
		dial         = callstate.Dial
		dialAccepted = callstate.DialAccepted
		dialFailed   = callstate.DialFailed
		dialAborted  = callstate.DialAborted
		callStart    = callstate.CallStart
		callEnd      = callstate.CallEnd
		initFailed   = callstate.InitiationFailed
		postcall     = callstate.Postcall
		postcallLate = callstate.PostcallTimeout
		timeout      = callstate.Timeout
		retryDue     = callstate.RetryDue
		cancel       = callstate.Cancel
		dialDeferred = callstate.DialDeferred
		unanswered   = callstate.DialUnanswered
	)
	retry := func(outcome string) want { return move(callstate.RetryScheduled, outcome, -1) }
	allStay := func() map[callstate.Kind]want {
		return map[callstate.Kind]want{
			dial: stay(), dialAccepted: stay(), dialFailed: stay(), dialAborted: stay(), callStart: stay(), callEnd: stay(),
			initFailed: stay(), postcall: stay(), postcallLate: stay(), timeout: stay(), retryDue: stay(), cancel: stay(), dialDeferred: stay(),
			unanswered: stay(),
		}
	}

	expect := map[callstate.Status]map[callstate.Kind]want{
		callstate.Queued: {
			dial:         {changed: true, to: callstate.Initiated, attempt: 2, slot: +1},
			dialAccepted: stay(),
			dialFailed:   stay(),
			dialAborted:  stay(),
			callStart:    stay(),
			callEnd:      stay(), // call_end for a queued call
			initFailed:   stay(),
			postcall:     stay(),
			postcallLate: stay(),
			timeout:      stay(),
			retryDue:     stay(),
			cancel:       move(callstate.Cancelled, callstate.OutcomeCancelled, 0),
			dialDeferred: stay(),
			unanswered:   stay(),
		},
		callstate.Initiated: {
			dial:         stay(),
			dialAccepted: record(),
			dialFailed:   retry(callstate.OutcomeDialError),
			dialAborted:  {changed: true, to: callstate.Queued, attempt: 0, slot: -1}, // breaker refused: attempt not counted
			callStart:    move(callstate.InProgress, "", 0),
			callEnd:      move(callstate.WaitingPostcall, callstate.OutcomeAnswered, -1), // call_start lost
			initFailed:   retry(callstate.OutcomeNoAnswer),
			postcall:     move(callstate.Completed, callstate.OutcomeCompleted, -1), // postcall overtakes everything
			postcallLate: stay(),
			timeout:      retry(callstate.OutcomeTimeout),
			retryDue:     stay(),
			cancel:       move(callstate.Cancelled, callstate.OutcomeCancelled, 0),            // no hang-up: the slot is held until call_end
			dialDeferred: {changed: true, to: callstate.RetryScheduled, attempt: 0, slot: -1}, // pre-dial check unanswered: attempt not counted
			unanswered:   record(),                                                            // the call may be live: it keeps its slot
		},
		callstate.InProgress: {
			dial:         stay(),
			dialAccepted: record(), // the originate answer arrived after call_start
			dialFailed:   record(), // dial failure after call_start: recorded, the call stays live
			dialAborted:  record(),
			callStart:    stay(), // duplicate call_start
			callEnd:      move(callstate.WaitingPostcall, callstate.OutcomeAnswered, -1),
			initFailed:   retry(callstate.OutcomeNoAnswer),
			postcall:     move(callstate.Completed, callstate.OutcomeCompleted, -1), // postcall overtook call_end
			postcallLate: stay(),
			timeout:      retry(callstate.OutcomeTimeout),
			retryDue:     stay(),
			cancel:       move(callstate.Cancelled, callstate.OutcomeCancelled, 0), // no hang-up: the slot is held until call_end
			dialDeferred: stay(),
			unanswered:   record(), // the answer is lost, the call is live
		},
		callstate.WaitingPostcall: {
			dial:         stay(),
			dialAccepted: stay(),
			dialFailed:   stay(),
			dialAborted:  stay(),
			callStart:    stay(), // call_start after call_end
			callEnd:      stay(), // duplicate call_end
			initFailed:   stay(),
			postcall:     move(callstate.Completed, callstate.OutcomeCompleted, 0),
			postcallLate: move(callstate.Completed, callstate.OutcomeCompleted, 0),
			timeout:      stay(),
			retryDue:     stay(),
			cancel:       move(callstate.Cancelled, callstate.OutcomeCancelled, 0),
			dialDeferred: stay(),
			unanswered:   stay(),
		},
		callstate.RetryScheduled: {
			dial:         stay(),
			dialAccepted: stay(),
			dialFailed:   stay(),
			dialAborted:  stay(),
			callStart:    stay(), // late call_start of the failed attempt
			callEnd:      stay(), // call_end for a retry_scheduled call
			initFailed:   stay(),
			postcall:     stay(),
			postcallLate: stay(),
			timeout:      stay(),
			retryDue:     move(callstate.Queued, "", 0),
			cancel:       move(callstate.Cancelled, callstate.OutcomeCancelled, 0),
			dialDeferred: stay(),
			unanswered:   stay(),
		},
		// Terminal statuses: every event, cancel included, changes nothing.
		callstate.Completed: allStay(),
		callstate.Failed:    allStay(),
		callstate.Cancelled: allStay(),
	}
	// A changed policy moves only a waiting retry (to its new time); a
	// queued call is judged again when it is dialled.
	for status, row := range expect {
		row[callstate.PolicyChanged] = stay()
		if status == callstate.RetryScheduled {
			row[callstate.PolicyChanged] = move(callstate.RetryScheduled, callstate.OutcomeNoAnswer, 0)
		}
	}

	for from := range expect {
		if !slices.Contains(callstate.Statuses, from) {
			t.Errorf("expectation for unknown status %q", from)
		}
	}
	for _, from := range callstate.Statuses {
		row, ok := expect[from]
		if !ok {
			t.Errorf("no expectations for status %q", from)
			continue
		}
		for k := range row {
			if !slices.Contains(kinds, k) {
				t.Errorf("expectation for unknown kind %q", k)
			}
		}
		for _, k := range kinds {
			w, ok := row[k]
			if !ok {
				t.Errorf("no expectation for (%s, %s)", from, k)
				continue
			}
			t.Run(string(from)+"/"+string(k), func(t *testing.T) {
				t.Parallel()
				c := callstate.Call{Status: from, Attempt: 1, MaxAttempts: 3}
				d := callstate.Next(c, eventFor(k), policy(), now)
				wantTo := w.to
				if wantTo == "" {
					wantTo = from
				}
				if d.Changed != w.changed {
					t.Errorf("Changed = %v, want %v (why: %q)", d.Changed, w.changed, d.Why)
				}
				if d.From != from {
					t.Errorf("From = %s, want %s", d.From, from)
				}
				if d.To != wantTo {
					t.Errorf("To = %s, want %s", d.To, wantTo)
				}
				if d.Attempt != w.attempt {
					t.Errorf("Attempt = %d, want %d", d.Attempt, w.attempt)
				}
				if d.Outcome != w.outcome {
					t.Errorf("Outcome = %q, want %q", d.Outcome, w.outcome)
				}
				if got := d.HoldsSlotChange(); got != w.slot {
					t.Errorf("HoldsSlotChange() = %d, want %d", got, w.slot)
				}
				wantRetryAt := time.Time{}
				if wantTo == callstate.RetryScheduled && (from != callstate.RetryScheduled || k == callstate.PolicyChanged) {
					wantRetryAt = now.Add(300 * time.Second) // retry_delays_secs[0]
					if k == callstate.DialDeferred {
						wantRetryAt = now.Add(time.Minute) // the event's own delay
					}
				}
				if !d.NextRetryAt.Equal(wantRetryAt) {
					t.Errorf("NextRetryAt = %v, want %v", d.NextRetryAt, wantRetryAt)
				}
				if !d.Changed && d.Why == "" {
					t.Error("an ignored event must say why")
				}
			})
		}
	}
}

func TestNextCallEnd(t *testing.T) {
	t.Parallel()
	threeDelays := policy() // min 5s, delays 300/900/3600
	twoDelays := policy()
	twoDelays.RetryDelaysSecs = []int{10, 20}
	twoDelays.MaxAttempts = 5
	noMinimum := policy()
	noMinimum.MinCallDurationSecs = 0

	tests := []struct {
		name        string
		policy      config.CallHandling
		from        callstate.Status
		attempt     int
		maxAttempts int
		duration    float64
		to          callstate.Status
		outcome     string
		nextRetryAt time.Time
	}{
		{"short first attempt", threeDelays, callstate.InProgress, 1, 3, 4.9, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(300 * time.Second)},
		{"short second attempt", threeDelays, callstate.InProgress, 2, 3, 2, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(900 * time.Second)},
		{"zero duration is short", threeDelays, callstate.InProgress, 1, 3, 0, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(300 * time.Second)},
		{"short without call_start", threeDelays, callstate.Initiated, 1, 3, 1, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(300 * time.Second)},
		{"last delay repeats: attempt 3 of 5", twoDelays, callstate.InProgress, 3, 5, 1, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(20 * time.Second)},
		{"last delay repeats: attempt 4 of 5", twoDelays, callstate.InProgress, 4, 5, 1, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(20 * time.Second)},
		{"short on the last attempt fails", threeDelays, callstate.InProgress, 3, 3, 4, callstate.Failed, callstate.OutcomeShortCall, time.Time{}},
		{"short with a single attempt fails", threeDelays, callstate.InProgress, 1, 1, 4, callstate.Failed, callstate.OutcomeShortCall, time.Time{}},
		{"exactly the minimum is not short", threeDelays, callstate.InProgress, 1, 3, 5, callstate.WaitingPostcall, callstate.OutcomeAnswered, time.Time{}},
		{"exactly the minimum on the last attempt", threeDelays, callstate.InProgress, 3, 3, 5, callstate.WaitingPostcall, callstate.OutcomeAnswered, time.Time{}},
		{"just under the minimum is short", threeDelays, callstate.InProgress, 1, 3, 4.999, callstate.RetryScheduled, callstate.OutcomeShortCall, now.Add(300 * time.Second)},
		{"long call", threeDelays, callstate.InProgress, 2, 3, 1799, callstate.WaitingPostcall, callstate.OutcomeAnswered, time.Time{}},
		{"no minimum: zero is not short", noMinimum, callstate.InProgress, 1, 3, 0, callstate.WaitingPostcall, callstate.OutcomeAnswered, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := callstate.Call{Status: tt.from, Attempt: tt.attempt, MaxAttempts: tt.maxAttempts}
			d := callstate.Next(c, callstate.Event{Kind: callstate.CallEnd, DurationSecs: tt.duration}, tt.policy, now)
			if !d.Changed || d.From != tt.from || d.To != tt.to {
				t.Fatalf("got Changed=%v %s→%s, want true %s→%s", d.Changed, d.From, d.To, tt.from, tt.to)
			}
			if d.Attempt != tt.attempt {
				t.Errorf("Attempt = %d, want %d (call_end does not start an attempt)", d.Attempt, tt.attempt)
			}
			if d.Outcome != tt.outcome {
				t.Errorf("Outcome = %q, want %q", d.Outcome, tt.outcome)
			}
			if !d.NextRetryAt.Equal(tt.nextRetryAt) {
				t.Errorf("NextRetryAt = %v, want %v", d.NextRetryAt, tt.nextRetryAt)
			}
			if got := d.HoldsSlotChange(); got != -1 {
				t.Errorf("HoldsSlotChange() = %d, want -1: an ended call frees its slot", got)
			}
		})
	}
}

func TestNextFailedAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		from    callstate.Status
		ev      callstate.Event
		attempt int
		to      callstate.Status
		outcome string
	}{
		{"dial error retries", callstate.Initiated, callstate.Event{Kind: callstate.DialFailed}, 1, callstate.RetryScheduled, callstate.OutcomeDialError},
		{"dial failure keeps its reason", callstate.Initiated, callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialLost}, 2, callstate.RetryScheduled, callstate.OutcomeDialLost},
		{"dial error exhausts", callstate.Initiated, callstate.Event{Kind: callstate.DialFailed}, 3, callstate.Failed, callstate.OutcomeDialError},
		{"busy retries", callstate.Initiated, callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeBusy}, 1, callstate.RetryScheduled, callstate.OutcomeBusy},
		{"no answer by default", callstate.Initiated, callstate.Event{Kind: callstate.InitiationFailed}, 2, callstate.RetryScheduled, callstate.OutcomeNoAnswer},
		{"no answer exhausts", callstate.Initiated, callstate.Event{Kind: callstate.InitiationFailed}, 3, callstate.Failed, callstate.OutcomeNoAnswer},
		{"busy exhausts", callstate.InProgress, callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeBusy}, 3, callstate.Failed, callstate.OutcomeBusy},
		{"watchdog timeout retries", callstate.InProgress, callstate.Event{Kind: callstate.Timeout}, 1, callstate.RetryScheduled, callstate.OutcomeTimeout},
		{"watchdog timeout exhausts", callstate.Initiated, callstate.Event{Kind: callstate.Timeout}, 3, callstate.Failed, callstate.OutcomeTimeout},
		{"attempt beyond the maximum fails", callstate.InProgress, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 1}, 4, callstate.Failed, callstate.OutcomeShortCall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := callstate.Call{Status: tt.from, Attempt: tt.attempt, MaxAttempts: 3}
			d := callstate.Next(c, tt.ev, policy(), now)
			if !d.Changed || d.To != tt.to {
				t.Fatalf("got Changed=%v To=%s, want true %s", d.Changed, d.To, tt.to)
			}
			if d.Outcome != tt.outcome {
				t.Errorf("Outcome = %q, want %q", d.Outcome, tt.outcome)
			}
			if d.Attempt != tt.attempt {
				t.Errorf("Attempt = %d, want %d", d.Attempt, tt.attempt)
			}
			var wantRetryAt time.Time
			if tt.to == callstate.RetryScheduled {
				wantRetryAt = now.Add(policy().RetryDelay(tt.attempt))
			}
			if !d.NextRetryAt.Equal(wantRetryAt) {
				t.Errorf("NextRetryAt = %v, want %v", d.NextRetryAt, wantRetryAt)
			}
			if d.Why == "" {
				t.Error("a retry or failure must say why")
			}
			if got := d.HoldsSlotChange(); got != -1 {
				t.Errorf("HoldsSlotChange() = %d, want -1", got)
			}
		})
	}
}

// TestNextIgnoresLateEvents names the late, duplicate and out-of-order events
// the workers see in practice; each must leave the call exactly as it was.
func TestNextIgnoresLateEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		from    callstate.Status
		attempt int
		ev      callstate.Event
	}{
		{"call_start after call_end", callstate.WaitingPostcall, 1, callstate.Event{Kind: callstate.CallStart}},
		{"duplicate call_end", callstate.WaitingPostcall, 1, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 60}},
		{"duplicate short call_end", callstate.RetryScheduled, 1, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 1}},
		{"call_end for a queued call", callstate.Queued, 0, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 60}},
		{"call_end for a retry_scheduled call", callstate.RetryScheduled, 2, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 60}},
		{"duplicate call_start", callstate.InProgress, 1, callstate.Event{Kind: callstate.CallStart}},
		{"second dial of an initiated call", callstate.Initiated, 1, callstate.Event{Kind: callstate.Dial}},
		{"retry_due for a queued call", callstate.Queued, 1, callstate.Event{Kind: callstate.RetryDue}},
		{"postcall for a retry_scheduled call", callstate.RetryScheduled, 1, callstate.Event{Kind: callstate.Postcall, DurationUnknown: true}},
		{"duplicate postcall", callstate.Completed, 1, callstate.Event{Kind: callstate.Postcall, DurationUnknown: true}},
		{"call_end after completion", callstate.Completed, 2, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 60}},
		{"call_end after failure", callstate.Failed, 3, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 1}},
		{"dial of a cancelled call", callstate.Cancelled, 1, callstate.Event{Kind: callstate.Dial}},
		{"cancel of a completed call", callstate.Completed, 1, callstate.Event{Kind: callstate.Cancel}},
		{"cancel of a failed call", callstate.Failed, 3, callstate.Event{Kind: callstate.Cancel}},
		{"cancel of a cancelled call", callstate.Cancelled, 0, callstate.Event{Kind: callstate.Cancel}},
		{"retry_due of a failed call", callstate.Failed, 3, callstate.Event{Kind: callstate.RetryDue}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := callstate.Call{Status: tt.from, Attempt: tt.attempt, MaxAttempts: 3}
			d := callstate.Next(c, tt.ev, policy(), now)
			if d.Changed {
				t.Errorf("Changed = true (%s→%s), want false", d.From, d.To)
			}
			if d.From != tt.from || d.To != tt.from {
				t.Errorf("got %s→%s, want %s→%s", d.From, d.To, tt.from, tt.from)
			}
			if d.Attempt != tt.attempt {
				t.Errorf("Attempt = %d, want %d", d.Attempt, tt.attempt)
			}
			if d.Outcome != "" || !d.NextRetryAt.IsZero() {
				t.Errorf("Outcome = %q, NextRetryAt = %v; want neither", d.Outcome, d.NextRetryAt)
			}
			if got := d.HoldsSlotChange(); got != 0 {
				t.Errorf("HoldsSlotChange() = %d, want 0", got)
			}
			if d.Why == "" {
				t.Error("an ignored event must say why")
			}
		})
	}
}

func TestNextDialIncrementsAttempt(t *testing.T) {
	t.Parallel()
	for _, attempt := range []int{0, 1, 2} {
		c := callstate.Call{Status: callstate.Queued, Attempt: attempt, MaxAttempts: 3}
		d := callstate.Next(c, callstate.Event{Kind: callstate.Dial}, policy(), now)
		if !d.Changed || d.To != callstate.Initiated || d.Attempt != attempt+1 {
			t.Errorf("Dial from queued attempt %d: Changed=%v To=%s Attempt=%d, want true initiated %d",
				attempt, d.Changed, d.To, d.Attempt, attempt+1)
		}
		if got := d.HoldsSlotChange(); got != 1 {
			t.Errorf("Dial from queued attempt %d: HoldsSlotChange() = %d, want 1", attempt, got)
		}
	}
}

// TestNextLifecycle plays realistic event streams, duplicates and reorderings
// included, and checks where the call ends up and that slots balance.
func TestNextLifecycle(t *testing.T) {
	t.Parallel()
	ev := func(k callstate.Kind) callstate.Event {
		return callstate.Event{Kind: k, DurationUnknown: k == callstate.Postcall}
	}
	end := func(secs float64) callstate.Event {
		return callstate.Event{Kind: callstate.CallEnd, DurationSecs: secs}
	}
	tests := []struct {
		name    string
		events  []callstate.Event
		status  callstate.Status
		attempt int
		outcome string // the last changing decision's outcome
	}{
		{
			name:   "answered on the first attempt",
			events: []callstate.Event{ev(callstate.Dial), ev(callstate.DialAccepted), ev(callstate.CallStart), end(42), ev(callstate.Postcall)},
			status: callstate.Completed, attempt: 1, outcome: callstate.OutcomeCompleted,
		},
		{
			name: "short call, then answered",
			events: []callstate.Event{
				ev(callstate.Dial), ev(callstate.CallStart), end(2), end(2), ev(callstate.CallStart),
				ev(callstate.RetryDue), ev(callstate.Dial), ev(callstate.CallStart), ev(callstate.CallStart), end(30), end(30), ev(callstate.Postcall),
			},
			status: callstate.Completed, attempt: 2, outcome: callstate.OutcomeCompleted,
		},
		{
			name:   "postcall overtakes call_start and call_end",
			events: []callstate.Event{ev(callstate.Dial), ev(callstate.Postcall), ev(callstate.CallStart), end(30), ev(callstate.DialAccepted)},
			status: callstate.Completed, attempt: 1, outcome: callstate.OutcomeCompleted,
		},
		{
			name: "no answer until exhausted",
			events: []callstate.Event{
				ev(callstate.Dial), ev(callstate.InitiationFailed), ev(callstate.RetryDue),
				ev(callstate.Dial), ev(callstate.DialFailed), ev(callstate.RetryDue),
				ev(callstate.Dial), ev(callstate.CallStart), ev(callstate.Timeout),
				ev(callstate.RetryDue), ev(callstate.Dial), ev(callstate.Cancel),
			},
			status: callstate.Failed, attempt: 3, outcome: callstate.OutcomeTimeout,
		},
		{
			// No hang-up: the slot is held until the platform's call_end.
			name:   "cancelled while ringing",
			events: []callstate.Event{ev(callstate.Dial), ev(callstate.Cancel), ev(callstate.CallStart), end(60), ev(callstate.Postcall)},
			status: callstate.Cancelled, attempt: 1, outcome: callstate.OutcomeCancelled,
		},
		{
			// The pre-dial check did not answer: nothing was sent.
			name:   "cancelled during pre-dial, the check fails",
			events: []callstate.Event{ev(callstate.Dial), ev(callstate.Cancel), {Kind: callstate.DialDeferred, RetryAfter: time.Minute}},
			status: callstate.Cancelled, attempt: 1, outcome: callstate.OutcomeCancelled,
		},
		{
			name:   "cancelled during pre-dial, the check refuses",
			events: []callstate.Event{ev(callstate.Dial), ev(callstate.Cancel), {Kind: callstate.Cancel, Reason: callstate.OutcomeIneligible}},
			status: callstate.Cancelled, attempt: 1, outcome: callstate.OutcomeCancelled,
		},
		{
			name:   "cancelled while dialing, the dial fails",
			events: []callstate.Event{ev(callstate.Dial), ev(callstate.Cancel), ev(callstate.DialFailed), end(60)},
			status: callstate.Cancelled, attempt: 1, outcome: callstate.OutcomeCancelled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := callstate.Call{Status: callstate.Queued, MaxAttempts: 3}
			slots, outcome := 0, ""
			for i, e := range tt.events {
				d := callstate.Next(c, e, policy(), now)
				slots += d.HoldsSlotChange()
				if slots < 0 || slots > 1 {
					t.Fatalf("event %d (%s): slot count %d", i, e.Kind, slots)
				}
				if d.Changed && d.To != d.From {
					outcome = d.Outcome
				}
				c.Status, c.Attempt, c.SlotHeld = d.To, d.Attempt, slots == 1
			}
			if c.Status != tt.status || c.Attempt != tt.attempt {
				t.Errorf("ended %s attempt %d, want %s attempt %d", c.Status, c.Attempt, tt.status, tt.attempt)
			}
			if outcome != tt.outcome {
				t.Errorf("last outcome %q, want %q", outcome, tt.outcome)
			}
			if slots != 0 {
				t.Errorf("slot count %d at the end, want 0", slots)
			}
		})
	}
}

// TestNextInvariants applies every sequence of up to four events to a fresh
// call and checks what must hold whatever the order: the running sum of
// HoldsSlotChange matches HoldsSlot, attempts never go down (except when an
// aborted or deferred dial gives its attempt back) or past the maximum, terminal statuses are absorbing and an unchanged decision leaves
// the call as it was.
func TestNextInvariants(t *testing.T) {
	t.Parallel()
	events := make([]callstate.Event, 0, len(kinds)+1)
	for _, k := range kinds {
		events = append(events, eventFor(k))
	}
	events = append(events, callstate.Event{Kind: callstate.CallEnd, DurationSecs: 1}) // short

	var walk func(c callstate.Call, slots int, path []string)
	walk = func(c callstate.Call, slots int, path []string) {
		if len(path) == 4 {
			return
		}
		for _, e := range events {
			d := callstate.Next(c, e, policy(), now)
			p := append(slices.Clip(path), string(e.Kind))
			s := slots + d.HoldsSlotChange()
			switch {
			case d.From != c.Status:
				t.Fatalf("%v: From = %s, want %s", p, d.From, c.Status)
			case !d.To.Valid():
				t.Fatalf("%v: To = %q is not a status", p, d.To)
			case s < 0 || s > 1 || (s == 0 && d.To.HoldsSlot()) || (s == 1 && !d.To.HoldsSlot() && d.To != callstate.Cancelled):
				// Only a call cancelled while live holds a slot outside
				// initiated and in_progress (there is no hang-up).
				t.Fatalf("%v: slot count %d with status %s", p, s, d.To)
			case d.Attempt < c.Attempt && !((e.Kind == callstate.DialAborted || e.Kind == callstate.DialDeferred) && d.Attempt == c.Attempt-1),
				d.Attempt > c.MaxAttempts:
				t.Fatalf("%v: attempt %d→%d (max %d)", p, c.Attempt, d.Attempt, c.MaxAttempts)
			case c.Status.Terminal() && (d.To != c.Status || (d.Changed && !c.SlotHeld)):
				t.Fatalf("%v: terminal %s moved to %s", p, c.Status, d.To)
			case !d.Changed && (d.To != c.Status || d.Attempt != c.Attempt):
				t.Fatalf("%v: unchanged decision moved %s/%d to %s/%d", p, c.Status, c.Attempt, d.To, d.Attempt)
			case (d.To == callstate.RetryScheduled && (d.From != callstate.RetryScheduled || (d.Changed && e.Kind == callstate.PolicyChanged))) !=
				!d.NextRetryAt.IsZero():
				t.Fatalf("%v: NextRetryAt = %v moving to %s", p, d.NextRetryAt, d.To)
			}
			walk(callstate.Call{Status: d.To, Attempt: d.Attempt, MaxAttempts: c.MaxAttempts, SlotHeld: s == 1}, s, p)
		}
	}
	for _, maxAttempts := range []int{1, 2, 3} {
		walk(callstate.Call{Status: callstate.Queued, MaxAttempts: maxAttempts}, 0, nil)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		delays  []int
		attempt int
		want    time.Duration
	}{
		{"first attempt", []int{300, 900, 3600}, 1, 300 * time.Second},
		{"second attempt", []int{300, 900, 3600}, 2, 900 * time.Second},
		{"third attempt", []int{300, 900, 3600}, 3, time.Hour},
		{"last delay repeats", []int{300, 900, 3600}, 4, time.Hour},
		{"last delay repeats far out", []int{300, 900, 3600}, 50, time.Hour},
		{"attempt zero uses the first delay", []int{300, 900, 3600}, 0, 300 * time.Second},
		{"negative attempt uses the first delay", []int{300, 900, 3600}, -1, 300 * time.Second},
		{"single delay", []int{60}, 1, time.Minute},
		{"single delay repeats", []int{60}, 7, time.Minute},
		{"zero delay", []int{0, 10}, 1, 0},
		{"no delays", []int{}, 1, 0},
		{"nil delays", nil, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.CallHandling{RetryDelaysSecs: tt.delays}
			if got := c.RetryDelay(tt.attempt); got != tt.want {
				t.Errorf("RetryDelay(%d) with %v = %v, want %v", tt.attempt, tt.delays, got, tt.want)
			}
		})
	}
}

// TestNextCancelFreesTheSlotOfAnUndialledCall: a cancel may keep a live
// call's slot (no hang-up), but a call the pre-dial check refused was never
// dialled, so its slot is free at once.
func TestNextCancelFreesTheSlotOfAnUndialledCall(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	c := callstate.Call{Status: callstate.Initiated, Attempt: 1, MaxAttempts: 3}
	live := callstate.Next(c, callstate.Event{Kind: callstate.Cancel}, policy(), now)
	if live.To != callstate.Cancelled || !live.KeepsSlot {
		t.Fatalf("operator cancel of a dialled call = %+v, want cancelled keeping its slot", live)
	}
	refused := callstate.Next(c, callstate.Event{Kind: callstate.Cancel, Reason: callstate.OutcomeIneligible}, policy(), now)
	if refused.To != callstate.Cancelled || refused.KeepsSlot || refused.Outcome != callstate.OutcomeIneligible {
		t.Fatalf("pre-dial refusal = %+v, want cancelled (ineligible) with its slot freed", refused)
	}
}
