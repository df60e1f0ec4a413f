package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// nextAttempt ends the call's current attempt with no answer, brings the
// retry back and claims it: the call is on its next attempt, dialing.
func nextAttempt(t *testing.T, s *store.Store, integ, id uuid.UUID, at time.Time) {
	t.Helper()
	c := getCall(t, s, id)
	fail := store.CallEvent{IntegrationID: integ, CallID: id, Attempt: c.Attempt, At: at,
		Event: callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeNoAnswer}}
	if out := apply(t, s, fail); out[0].Decision.To != callstate.RetryScheduled {
		t.Fatalf("ending attempt %d = %+v", c.Attempt, out[0].Decision)
	}
	if due, err := dbClockAt(s, at.Add(time.Hour)).RequeueDue(t.Context(), uuid.Nil, 10); err != nil || len(due) != 1 {
		t.Fatalf("RequeueDue = %v, %v", due, err)
	}
	if ids := claim(t, s, integ, at.Add(time.Hour)); len(ids) != 1 || ids[0] != id {
		t.Fatalf("claim = %v", ids)
	}
}

// accept records the dial's answer for the call's current attempt.
func accept(t *testing.T, s *store.Store, integ, id uuid.UUID, ext, conv string, at time.Time) {
	t.Helper()
	c := getCall(t, s, id)
	ev := store.CallEvent{IntegrationID: integ, CallID: id, Attempt: c.Attempt, ExternalCallID: ext, ConversationID: conv,
		Event: callstate.Event{Kind: callstate.DialAccepted}, At: at}
	if out := apply(t, s, ev); !out[0].Decision.Changed {
		t.Fatalf("dial answer = %+v", out[0])
	}
}

// webhookEvent is a call-events webhook's event as the workers decode it.
func webhookEvent(integ uuid.UUID, ref string, kind callstate.Kind, eventType, body string, at time.Time) store.CallEvent {
	return store.CallEvent{IntegrationID: integ, ExternalCallID: ref, Event: callstate.Event{Kind: kind}, At: at,
		Detail: map[string]any{"eventType": eventType}, DedupeTTL: 10 * time.Minute, DedupeKey: "body:" + body}
}

// TestApplyEventsAttemptIdentity: whatever reports on attempt 1 — call_end,
// a post-call, an initiation failure — once the call is on attempt 2 is
// kept in the history and moves nothing, however it names the attempt.
func TestApplyEventsAttemptIdentity(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"max_attempts": 3, "retry_delays_secs": []int{60}})
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	accept(t, s, in.ID, id, "ext-1", "conv-1", t0)
	nextAttempt(t, s, in.ID, id, t0.Add(time.Minute))
	at := t0.Add(2 * time.Hour)
	accept(t, s, in.ID, id, "ext-2", "conv-2", at)
	if c := getCall(t, s, id); c.Attempt != 2 || deref(c.ConversationID) != "conv-2" || deref(c.ExternalCallID) != "ext-2" {
		t.Fatalf("attempt 2 = %+v", c)
	}

	postcall := func(ev store.CallEvent) store.CallEvent {
		ev.Event = callstate.Event{Kind: callstate.Postcall, DurationSecs: 90}
		ev.Postcall = &store.PostcallData{Summary: "attempt 1's conversation"}
		ev.At = at
		return ev
	}
	failure := func(ev store.CallEvent) store.CallEvent {
		ev.Event = callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeBusy}
		ev.At = at
		return ev
	}
	late := []struct {
		name string
		ev   store.CallEvent
	}{
		{"call_end by the attempt's call_id", webhookEvent(in.ID, callstate.AttemptCallID(id, 1), callstate.CallEnd, "call_end", "a", at)},
		{"call_start by the dialler's id", webhookEvent(in.ID, "ext-1", callstate.CallStart, "call_start", "b", at)},
		{"post-call by conversation id", postcall(store.CallEvent{IntegrationID: in.ID, ConversationID: "conv-1"})},
		{"post-call by our id and conversation id", postcall(store.CallEvent{IntegrationID: in.ID, CallID: id, ConversationID: "conv-1"})},
		{"post-call by the attempt's call_id", postcall(store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1})},
		{"initiation failure by conversation id", failure(store.CallEvent{IntegrationID: in.ID, ConversationID: "conv-1"})},
		{"initiation failure by the attempt's call_id", failure(store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1})},
		{"late dial answer of attempt 1", store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1, ExternalCallID: "ext-1b",
			Event: callstate.Event{Kind: callstate.DialAccepted}, At: at}},
	}
	for _, tt := range late {
		out := apply(t, s, tt.ev)
		if !out[0].Found || out[0].CallID != id || out[0].Decision.Changed || out[0].Event.Attempt != 1 {
			t.Errorf("%s: %+v, want found as attempt 1 and unchanged", tt.name, out[0])
		}
	}
	c := getCall(t, s, id)
	if c.Attempt != 2 || c.Status != callstate.Initiated || c.Summary != nil || deref(c.ConversationID) != "conv-2" {
		t.Fatalf("late events of attempt 1 moved attempt 2: %+v", c)
	}
	kept := 0
	rows, err := s.CallHistory(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Attempt == 1 && r.OccurredAt.Equal(at) {
			kept++
		}
	}
	if kept != len(late) {
		t.Fatalf("history keeps %d of the %d late events", kept, len(late))
	}

	// Attempt 2's own reports apply, by each of its names.
	if out := apply(t, s, webhookEvent(in.ID, callstate.AttemptCallID(id, 2), callstate.CallStart, "call_start", "c", at)); !out[0].Decision.Changed {
		t.Fatalf("call_start of attempt 2 = %+v", out[0])
	}
	end := webhookEvent(in.ID, "ext-2", callstate.CallEnd, "call_end", "d", at)
	end.Event.DurationSecs = 60
	if out := apply(t, s, end); out[0].Decision.To != callstate.WaitingPostcall {
		t.Fatalf("call_end of attempt 2 = %+v", out[0])
	}
	done := postcall(store.CallEvent{IntegrationID: in.ID, ConversationID: "conv-2"})
	done.Postcall.Summary = "attempt 2's conversation"
	if out := apply(t, s, done); out[0].Decision.To != callstate.Completed {
		t.Fatalf("post-call of attempt 2 = %+v", out[0])
	}
	if c := getCall(t, s, id); deref(c.Summary) != "attempt 2's conversation" {
		t.Fatalf("summary = %q", deref(c.Summary))
	}
	// The late dial answer recorded attempt 1's id on attempt 1 only.
	var ext string
	if err := s.Pool().QueryRow(t.Context(), `SELECT external_call_id FROM call_attempts WHERE call_id = $1 AND attempt = 1`, id).Scan(&ext); err != nil || ext != "ext-1b" {
		t.Fatalf("attempt 1's dialler id = %q, %v", ext, err)
	}
}

// TestApplyEventsDedupeByAttempt: call events are deduplicated by what they
// are about (attempt and type), not by their bytes. The same no-answer body
// on two attempts is two events; a redelivered one is one. A body naming
// only our call id is a duplicate across attempts, so a repeat of attempt
// 1's never ends attempt 2.
func TestApplyEventsDedupeByAttempt(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"max_attempts": 4, "retry_delays_secs": []int{60}})
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	// This dialler answers every attempt with the same id and reports a
	// no-answer with the same body each time.
	accept(t, s, in.ID, id, "va-same", "", t0)
	noAnswer := func(at time.Time) store.CallEvent {
		ev := webhookEvent(in.ID, "va-same", callstate.CallEnd, "call_end", `{"eventType":"call_end","callId":"va-same","duration":0}`, at)
		ev.Event.Reason = callstate.OutcomeNoAnswer
		return ev
	}
	at := t0.Add(time.Second)
	if out := apply(t, s, noAnswer(at), noAnswer(at)); out[0].Decision.To != callstate.RetryScheduled || !out[1].Duplicate {
		t.Fatalf("attempt 1's no-answer delivered twice = %+v", out)
	}
	if due, err := dbClockAt(s, t0.Add(2*time.Minute)).RequeueDue(t.Context(), uuid.Nil, 10); err != nil || len(due) != 1 {
		t.Fatalf("RequeueDue = %v, %v", due, err)
	}
	claim(t, s, in.ID, t0.Add(2*time.Minute))
	accept(t, s, in.ID, id, "va-same", "", t0.Add(2*time.Minute))
	at = t0.Add(3 * time.Minute) // within the body's dedupe window
	out := apply(t, s, noAnswer(at))
	if out[0].Duplicate || out[0].Decision.To != callstate.RetryScheduled || out[0].Decision.Attempt != 2 {
		t.Fatalf("attempt 2's identical no-answer = %+v, want applied", out[0])
	}
	if out := apply(t, s, noAnswer(at.Add(time.Second))); !out[0].Duplicate {
		t.Fatalf("attempt 2's no-answer again = %+v, want a duplicate", out[0])
	}

	// Attempt 3, reported by our bare call id.
	if _, err := dbClockAt(s, t0.Add(5*time.Minute)).RequeueDue(t.Context(), uuid.Nil, 10); err != nil {
		t.Fatal(err)
	}
	claim(t, s, in.ID, t0.Add(5*time.Minute))
	short := webhookEvent(in.ID, id.String(), callstate.CallEnd, "call_end", "bare-short", t0.Add(6*time.Minute))
	short.Event.DurationSecs = 2
	if out := apply(t, s, short); out[0].Decision.To != callstate.RetryScheduled || out[0].Decision.Attempt != 3 {
		t.Fatalf("attempt 3's short call_end = %+v", out[0])
	}
	if _, err := dbClockAt(s, t0.Add(8*time.Minute)).RequeueDue(t.Context(), uuid.Nil, 10); err != nil {
		t.Fatal(err)
	}
	claim(t, s, in.ID, t0.Add(8*time.Minute))
	short.At = t0.Add(9 * time.Minute) // the dialler resends it while attempt 4 is live
	if out := apply(t, s, short); !out[0].Duplicate {
		t.Fatalf("a resent bare call_end of attempt 3 = %+v, want a duplicate", out[0])
	}
	if c := getCall(t, s, id); c.Attempt != 4 || c.Status != callstate.Initiated {
		t.Fatalf("attempt 4 = %s on %d, want initiated", c.Status, c.Attempt)
	}
}

// TestDialFailureAfterCallStart: the live evidence wins. The call keeps its
// slot, the dial's answer is recorded and the dial is no longer pending, so
// the watchdog does not take the call for a lost dial.
func TestDialFailureAfterCallStart(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	apply(t, s, webhookEvent(in.ID, callstate.AttemptCallID(id, 1), callstate.CallStart, "call_start", "s", t0.Add(time.Second)))
	failed := store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1, At: t0.Add(10 * time.Second),
		Event:  callstate.Event{Kind: callstate.DialFailed, Reason: callstate.OutcomeDialError},
		Detail: map[string]any{"error": "originate: context deadline exceeded"}}
	if out := apply(t, s, failed); !out[0].Decision.Changed || out[0].Decision.To != callstate.InProgress {
		t.Fatalf("dial failure after call_start = %+v", out[0])
	}
	c := getCall(t, s, id)
	if c.Status != callstate.InProgress || c.SlotTakenAt == nil || c.DialState == "dialing" {
		t.Fatalf("call after the dial failure = %+v", c)
	}
	h := history(t, s, id)
	if last := h[len(h)-1]; last != "dial_failed in_progress→in_progress #1" {
		t.Fatalf("history ends with %q", last)
	}
	overdue, err := dbClockAt(s, t0.Add(10*time.Minute)).OverdueCalls(t.Context(), in.ID, 2*time.Minute, 10)
	if err != nil || len(overdue) != 0 {
		t.Fatalf("watchdog sees %v, %v: want the live call left alone", overdue, err)
	}
}

// TestClaimCallsRefusedDialKeepsItsPlace: a dial the breaker refused goes
// back to the queue where it was, ahead of calls queued after it.
func TestClaimCallsRefusedDialKeepsItsPlace(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 1})
	ids := queueCalls(t, s, in.ID, 3, t0)
	for round := range 3 {
		at := t0.Add(time.Duration(round+1) * time.Second)
		got := claim(t, s, in.ID, at)
		if len(got) != 1 || got[0] != ids[0] {
			t.Fatalf("round %d claimed %v, want the oldest call %s", round, got, ids[0])
		}
		aborted := store.CallEvent{IntegrationID: in.ID, CallID: ids[0], Attempt: 1, At: at,
			Event: callstate.Event{Kind: callstate.DialAborted}}
		if out := apply(t, s, aborted); out[0].Decision.To != callstate.Queued {
			t.Fatalf("aborted = %+v", out[0])
		}
	}
	if c := getCall(t, s, ids[0]); c.Attempt != 0 || !c.QueuedAt.Equal(t0) {
		t.Fatalf("refused call = attempt %d queued at %v, want 0 and %v", c.Attempt, c.QueuedAt, t0)
	}
}

// TestParkAndReleaseInterleaved: an event naming a dialler id that is not
// recorded yet is parked until the dial's answer records it. Whichever of
// the two transactions gets there first, the event is applied exactly
// once and nothing stays parked.
func TestParkAndReleaseInterleaved(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*store.Store, store.Integration, uuid.UUID, store.CallEvent, store.CallEvent) {
		s := newStore(t)
		in := activeIntegration(t, s, nil)
		id := queueCalls(t, s, in.ID, 1, t0)[0]
		claim(t, s, in.ID, t0)
		start := webhookEvent(in.ID, "va-early", callstate.CallStart, "call_start", "early", t0.Add(time.Second))
		answer := store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1, ExternalCallID: "va-early",
			Event: callstate.Event{Kind: callstate.DialAccepted}, At: t0.Add(2 * time.Second)}
		return s, in, id, start, answer
	}
	check := func(t *testing.T, s *store.Store, id uuid.UUID) {
		t.Helper()
		if c := getCall(t, s, id); c.Status != callstate.InProgress {
			t.Fatalf("call is %s, want in_progress: the parked call_start was lost", c.Status)
		}
		var parked int
		if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM parked_events`).Scan(&parked); err != nil || parked != 0 {
			t.Fatalf("%d events still parked, %v", parked, err)
		}
	}

	t.Run("the answer commits between the event's lookup and its park", func(t *testing.T) {
		t.Parallel()
		s, _, id, start, answer := setup(t)
		looked, proceed := make(chan struct{}), make(chan struct{})
		var once sync.Once
		events := store.WithApplyHooks(s, &store.ApplyHooks{Resolved: func() {
			once.Do(func() { close(looked); <-proceed })
		}})
		result := make(chan []store.Applied, 1)
		go func() {
			out, err := events.ApplyEvents(t.Context(), []store.CallEvent{start})
			if err != nil {
				t.Error(err)
			}
			result <- out
		}()
		<-looked // the event found no call by "va-early"
		apply(t, s, answer)
		close(proceed)
		out := <-result
		if len(out) != 1 || out[0].Parked || !out[0].Decision.Changed {
			t.Fatalf("event = %+v, want applied, not parked", out)
		}
		check(t, s, id)
	})

	t.Run("the event parks first and the answer waits for it", func(t *testing.T) {
		t.Parallel()
		s, _, id, start, answer := setup(t)
		parked, proceed := make(chan struct{}), make(chan struct{})
		events := store.WithApplyHooks(s, &store.ApplyHooks{Parked: func(int) { close(parked); <-proceed }})
		result := make(chan []store.Applied, 2)
		go func() {
			out, err := events.ApplyEvents(t.Context(), []store.CallEvent{start})
			if err != nil {
				t.Error(err)
			}
			result <- out
		}()
		<-parked // parked, not committed yet
		go func() {
			out, err := s.ApplyEvents(t.Context(), []store.CallEvent{answer})
			if err != nil {
				t.Error(err)
			}
			result <- out
		}()
		// The answer's transaction must wait for the parking one.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var waiting int
			if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_locks
				WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).
				Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				break
			}
			if time.Now().After(deadline) {
				close(proceed)
				t.Fatal("the dial's answer did not wait for the parked event's transaction")
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(proceed)
		first, second := <-result, <-result
		if len(first) != 1 || !first[0].Parked {
			t.Fatalf("event = %+v, want parked", first)
		}
		if len(second) != 2 || !second[1].Decision.Changed || second[1].Event.Event.Kind != callstate.CallStart {
			t.Fatalf("answer = %+v, want it to release and apply the parked call_start", second)
		}
		check(t, s, id)
	})
}
