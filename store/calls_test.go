package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// t0 is a Wednesday, 14:00 in Kyiv.
var t0 = time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)

// activeIntegration creates an active integration of owner-a with the
// given call_handling (nil: defaults).
func activeIntegration(t *testing.T, s *store.Store, callHandling map[string]any) store.Integration {
	t.Helper()
	in := createIntegration(t, s, "owner-a", "Calls "+uuid.NewString()[:8])
	if callHandling != nil {
		putConfig(t, s, in.ID, config.KeyCallHandling, callHandling)
	}
	activate(t, s, in.ID)
	in.Status = store.StatusActive
	return in
}

func newCall(integ uuid.UUID, at time.Time) store.NewCall {
	return store.NewCall{ID: uuid.New(), IntegrationID: integ, PhoneNumber: "+380" + fmt.Sprint(100000000+time.Now().UnixNano()%899999999),
		ReceivedAt: at}
}

func insert(t *testing.T, s *store.Store, now time.Time, calls ...store.NewCall) []uuid.UUID {
	t.Helper()
	touched, err := s.InsertCalls(t.Context(), calls, now)
	if err != nil {
		t.Fatal(err)
	}
	return touched
}

// queueCalls inserts n calls received a millisecond apart from at.
func queueCalls(t *testing.T, s *store.Store, integ uuid.UUID, n int, at time.Time) []uuid.UUID {
	t.Helper()
	var calls []store.NewCall
	var ids []uuid.UUID
	for i := range n {
		c := newCall(integ, at.Add(time.Duration(i)*time.Millisecond))
		calls = append(calls, c)
		ids = append(ids, c.ID)
	}
	insert(t, s, at, calls...)
	return ids
}

func getCall(t *testing.T, s *store.Store, id uuid.UUID) store.Call {
	t.Helper()
	c, err := s.CallByID(t.Context(), id)
	if err != nil {
		t.Fatalf("get call %s: %v", id, err)
	}
	return c
}

func apply(t *testing.T, s *store.Store, events ...store.CallEvent) []store.Applied {
	t.Helper()
	out, err := s.ApplyEvents(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(events) {
		t.Fatalf("ApplyEvents returned %d results for %d events", len(out), len(events))
	}
	return out
}

// dbClockAt makes at the database clock s judges leases and deadlines by,
// and stamps new slots with.
func dbClockAt(s *store.Store, at time.Time) *store.Store {
	s.SetClock(func() time.Time { return at })
	return s
}

func claim(t *testing.T, s *store.Store, integ uuid.UUID, now time.Time) []uuid.UUID {
	t.Helper()
	claimed, err := dbClockAt(s, now).ClaimCalls(t.Context(), integ, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, c := range claimed {
		ids = append(ids, c.Call.ID)
	}
	return ids
}

func ev(integ, call uuid.UUID, kind callstate.Kind, at time.Time) store.CallEvent {
	// A post-call without metadata says nothing of the call's length.
	return store.CallEvent{IntegrationID: integ, CallID: call, Event: callstate.Event{Kind: kind, DurationUnknown: kind == callstate.Postcall}, At: at}
}

func callEnd(integ, call uuid.UUID, secs float64, at time.Time) store.CallEvent {
	e := ev(integ, call, callstate.CallEnd, at)
	e.Event.DurationSecs = secs
	return e
}

func history(t *testing.T, s *store.Store, id uuid.UUID) []string {
	t.Helper()
	rows, err := s.CallHistory(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s %s→%s #%d", r.Kind, deref(r.FromStatus), deref(r.ToStatus), r.Attempt))
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func countRows(t *testing.T, s *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInsertCalls(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"max_attempts": 5})

	c := newCall(in.ID, t0)
	c.RecordID, c.Priority, c.TraceID = "rec-1", 7, "trace-1"
	c.DynamicVariables = json.RawMessage(`{"client_name":"Іван"}`)
	if touched := insert(t, s, t0, c); !slices.Equal(touched, []uuid.UUID{in.ID}) {
		t.Fatalf("touched = %v, want the integration", touched)
	}
	got := getCall(t, s, c.ID)
	if got.Status != callstate.Queued || got.MaxAttempts != 5 || got.Attempt != 0 || deref(got.RecordID) != "rec-1" ||
		got.Priority != 7 || deref(got.TraceID) != "trace-1" || !got.QueuedAt.Equal(t0) || got.SlotTakenAt != nil {
		t.Fatalf("stored call = %+v", got)
	}
	var vars map[string]string
	if err := json.Unmarshal(got.DynamicVariables, &vars); err != nil || vars["client_name"] != "Іван" {
		t.Fatalf("dynamic variables = %s", got.DynamicVariables)
	}
	if h := history(t, s, c.ID); !slices.Equal(h, []string{"queued →queued #0"}) {
		t.Fatalf("history = %v", h)
	}

	// A redelivery, alone or twice in one batch, stores nothing more.
	if touched := insert(t, s, t0.Add(time.Minute), c); len(touched) != 0 {
		t.Fatalf("redelivery touched %v", touched)
	}
	d := newCall(in.ID, t0)
	insert(t, s, t0, d, d)
	if n := countRows(t, s, `SELECT count(*) FROM calls WHERE integration_id = $1`, in.ID); n != 2 {
		t.Fatalf("%d calls after redeliveries, want 2", n)
	}
	if h := history(t, s, c.ID); len(h) != 1 {
		t.Fatalf("redelivery added history: %v", h)
	}
	// A call without dynamic variables gets an empty object.
	if got := getCall(t, s, d.ID); string(got.DynamicVariables) != "{}" {
		t.Fatalf("dynamic variables = %s, want {}", got.DynamicVariables)
	}
}

// TestInsertCallsKeysWithinOneBatch: two requests under one key that reach
// the intake worker in the same batch make one call — the first.
func TestInsertCallsKeysWithinOneBatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	first, second, third := newCall(in.ID, t0), newCall(in.ID, t0), newCall(in.ID, t0)
	first.IdempotencyKeys = []string{"idem:batch"}
	second.IdempotencyKeys = []string{"idem:other", "idem:batch"}
	third.IdempotencyKeys = []string{"idem:third"}
	insert(t, s, t0, first, second, third)
	for _, c := range []struct {
		call    store.NewCall
		created bool
	}{{first, true}, {second, false}, {third, true}} {
		if _, err := s.CallByID(t.Context(), c.call.ID); (err == nil) != c.created {
			t.Errorf("call with keys %v: created = %v, want %v", c.call.IdempotencyKeys, err == nil, c.created)
		}
	}
}

func TestInsertCallsIdempotencyKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	other := activeIntegration(t, s, nil)

	withKeys := func(integ uuid.UUID, at time.Time, keys ...string) store.NewCall {
		c := newCall(integ, at)
		c.IdempotencyKeys = keys
		return c
	}
	steps := []struct {
		name    string
		call    store.NewCall
		now     time.Time
		created bool
	}{
		{"first", withKeys(in.ID, t0, "idem:a"), t0, true},
		{"same key an hour later", withKeys(in.ID, t0.Add(time.Hour), "idem:a"), t0.Add(time.Hour), false},
		{"same key among others", withKeys(in.ID, t0.Add(2*time.Hour), "idem:new", "idem:a"), t0.Add(2 * time.Hour), false},
		{"same key just inside the window", withKeys(in.ID, t0.Add(store.IdempotencyWindow-time.Second), "idem:a"),
			t0.Add(store.IdempotencyWindow - time.Second), false},
		{"same key in another integration", withKeys(other.ID, t0.Add(time.Hour), "idem:a"), t0.Add(time.Hour), true},
		{"another key", withKeys(in.ID, t0.Add(time.Hour), "idem:b"), t0.Add(time.Hour), true},
		{"same key after the window", withKeys(in.ID, t0.Add(store.IdempotencyWindow+time.Second), "idem:a"),
			t0.Add(store.IdempotencyWindow + time.Second), true},
		{"and again within the new window", withKeys(in.ID, t0.Add(store.IdempotencyWindow+time.Hour), "idem:a"),
			t0.Add(store.IdempotencyWindow + time.Hour), false},
	}
	for _, step := range steps {
		insert(t, s, step.now, step.call)
		_, err := s.CallByID(t.Context(), step.call.ID)
		if created := err == nil; created != step.created {
			t.Fatalf("%s: created = %v (%v), want %v", step.name, created, err, step.created)
		}
	}

	// Two new calls with one key in the same batch: the first wins.
	a, b := withKeys(in.ID, t0, "rec:x"), withKeys(in.ID, t0, "rec:x")
	insert(t, s, t0, a, b)
	if _, err := s.CallByID(t.Context(), a.ID); err != nil {
		t.Fatalf("first call of the batch: %v", err)
	}
	if _, err := s.CallByID(t.Context(), b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second call with the same key in one batch was stored (%v)", err)
	}
}

func TestApplyEventsSkipsSeenKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)

	start := ev(in.ID, id, callstate.CallStart, t0.Add(time.Second))
	start.Key = "CALLQUEUE_EVENTS:1"
	if out := apply(t, s, start); out[0].Duplicate || !out[0].Found || !out[0].Decision.Changed {
		t.Fatalf("first delivery = %+v", out[0])
	}
	before := history(t, s, id)
	if out := apply(t, s, start); !out[0].Duplicate || out[0].Decision.Changed {
		t.Fatalf("redelivery = %+v, want a duplicate", out[0])
	}

	// In one batch: the second event carries the first one's key, so it is a
	// redelivery and must not complete the call.
	end := callEnd(in.ID, id, 60, t0.Add(time.Minute))
	end.Key = "CALLQUEUE_EVENTS:2"
	post := ev(in.ID, id, callstate.Postcall, t0.Add(2*time.Minute))
	post.Key = end.Key
	out := apply(t, s, end, post)
	if out[0].Duplicate || !out[0].Decision.Changed || !out[1].Duplicate || out[1].Decision.Changed {
		t.Fatalf("batch with a repeated key = %+v", out)
	}
	if c := getCall(t, s, id); c.Status != callstate.WaitingPostcall {
		t.Fatalf("status %s, want waiting_postcall: the repeated key was applied", c.Status)
	}
	if h := history(t, s, id); len(h) != len(before)+1 {
		t.Fatalf("history %v, want one row more than %v", h, before)
	}
	// Events without a key are never deduplicated.
	unkeyed := ev(in.ID, id, callstate.Postcall, t0.Add(3*time.Minute))
	if out := apply(t, s, unkeyed, unkeyed); out[0].Duplicate || out[1].Duplicate || !out[0].Decision.Changed || out[1].Decision.Changed {
		t.Fatalf("unkeyed events = %+v", out)
	}
}

// TestApplyEventsDedupeKeys covers webhook natural keys: a repeated
// webhook within its window is a duplicate, in another batch or the same
// one (queue.Batcher puts concurrent webhooks in one message).
func TestApplyEventsDedupeKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10})
	ids := queueCalls(t, s, in.ID, 2, t0)
	claim(t, s, in.ID, t0)
	const ttl = 10 * time.Minute
	event := func(id uuid.UUID, kind callstate.Kind, key, dedupe string, at time.Time) store.CallEvent {
		e := ev(in.ID, id, kind, at)
		e.Key, e.DedupeKey, e.DedupeTTL = key, dedupe, ttl
		if kind == callstate.CallEnd {
			e.Event.DurationSecs = 60
		}
		return e
	}
	a, b := ids[0], ids[1]

	// One message carrying the same webhook twice, and another call's event.
	out := apply(t, s,
		event(a, callstate.CallStart, "EV:1:0", "start-a", t0),
		event(a, callstate.CallStart, "EV:1:1", "start-a", t0),
		event(b, callstate.CallStart, "EV:1:2", "start-b", t0))
	if out[0].Duplicate || !out[1].Duplicate || out[2].Duplicate || !out[2].Decision.Changed {
		t.Fatalf("batch with a repeated webhook = %+v", out)
	}
	// The same webhook again in a later message, within the window.
	if out := apply(t, s, event(a, callstate.CallStart, "EV:2:0", "start-a", t0.Add(time.Minute))); !out[0].Duplicate {
		t.Fatalf("repeated webhook within the window = %+v", out[0])
	}
	// Two copies of an end in one batch: the second must not apply.
	out = apply(t, s,
		event(a, callstate.CallEnd, "EV:3:0", "end-a", t0.Add(2*time.Minute)),
		event(a, callstate.Postcall, "EV:3:1", "end-a", t0.Add(2*time.Minute)))
	if out[0].Duplicate || !out[1].Duplicate {
		t.Fatalf("batch with a repeated end = %+v", out)
	}
	if c := getCall(t, s, a); c.Status != callstate.WaitingPostcall {
		t.Fatalf("call a is %s, want waiting_postcall", c.Status)
	}
	// After the window the natural key is free again.
	if out := apply(t, s, event(b, callstate.CallEnd, "EV:4:0", "start-b", t0.Add(ttl+time.Second))); out[0].Duplicate ||
		!out[0].Decision.Changed {
		t.Fatalf("reused natural key after its window = %+v", out[0])
	}
	if h := history(t, s, a); len(h) != 4 {
		t.Fatalf("history of a = %v, want queued, dial, call_start, call_end", h)
	}
}

func TestApplyEventsOfEarlierAttempt(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"retry_delays_secs": []int{60}})
	id := queueCalls(t, s, in.ID, 1, t0)[0]

	// Attempt 1: dialled as ext-1, not answered.
	claim(t, s, in.ID, t0)
	accepted := ev(in.ID, id, callstate.DialAccepted, t0)
	accepted.ExternalCallID = "ext-1"
	apply(t, s, accepted)
	noAnswer := store.CallEvent{IntegrationID: in.ID, ExternalCallID: "ext-1", At: t0.Add(5 * time.Second),
		Event: callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeNoAnswer}}
	if out := apply(t, s, noAnswer); !out[0].Decision.Changed || out[0].Decision.To != callstate.RetryScheduled {
		t.Fatalf("no answer = %+v", out[0].Decision)
	}
	// Attempt 2: dialled as ext-2.
	if due, err := dbClockAt(s, t0.Add(2*time.Minute)).RequeueDue(t.Context(), uuid.Nil, 10); err != nil || len(due) != 1 {
		t.Fatalf("RequeueDue = %v, %v", due, err)
	}
	if ids := claim(t, s, in.ID, t0.Add(2*time.Minute)); !slices.Equal(ids, []uuid.UUID{id}) {
		t.Fatalf("second claim = %v", ids)
	}
	accepted.ExternalCallID, accepted.At = "ext-2", t0.Add(2*time.Minute)
	apply(t, s, accepted)
	if c := getCall(t, s, id); c.Attempt != 2 || c.Status != callstate.Initiated || deref(c.ExternalCallID) != "ext-2" {
		t.Fatalf("call before the late events = %+v", c)
	}
	before := history(t, s, id)

	late := []struct {
		name string
		ev   store.CallEvent
	}{
		{"through attempt 1's external id", store.CallEvent{IntegrationID: in.ID, ExternalCallID: "ext-1",
			Event: callstate.Event{Kind: callstate.CallStart}, At: t0.Add(3 * time.Minute)}},
		{"with Attempt 1", store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1,
			Event: callstate.Event{Kind: callstate.CallEnd, DurationSecs: 90}, At: t0.Add(3 * time.Minute)}},
		{"with Attempt 1 and no answer", store.CallEvent{IntegrationID: in.ID, CallID: id, Attempt: 1,
			Event: callstate.Event{Kind: callstate.InitiationFailed}, At: t0.Add(3 * time.Minute)}},
	}
	for _, tt := range late {
		out := apply(t, s, tt.ev)
		if !out[0].Found || out[0].CallID != id || out[0].Decision.Changed {
			t.Errorf("%s: %+v, want found and unchanged", tt.name, out[0])
		}
	}
	if c := getCall(t, s, id); c.Attempt != 2 || c.Status != callstate.Initiated {
		t.Fatalf("late events moved the call: %+v", c)
	}
	// They are kept in the history, under attempt 1, changing nothing.
	h := history(t, s, id)
	if len(h) != len(before)+len(late) || !slices.Equal(h[:len(before)], before) {
		t.Fatalf("history after the late events: %v", h)
	}
	for _, row := range h[len(before):] {
		if !strings.HasSuffix(row, "initiated→initiated #1") {
			t.Fatalf("late event's history row %q, want it kept under attempt 1 without a move", row)
		}
	}
	// The current attempt's events still apply, through either id.
	if out := apply(t, s, store.CallEvent{IntegrationID: in.ID, ExternalCallID: "ext-2", Event: callstate.Event{Kind: callstate.CallStart},
		At: t0.Add(4 * time.Minute)}); !out[0].Decision.Changed {
		t.Fatalf("current attempt's call_start = %+v", out[0])
	}
	if c := getCall(t, s, id); c.Status != callstate.InProgress {
		t.Fatalf("status %s, want in_progress", c.Status)
	}
	// Attempt 1's record kept its own id and outcome.
	var ext, outcome string
	if err := s.Pool().QueryRow(t.Context(), `SELECT external_call_id, outcome FROM call_attempts WHERE call_id = $1 AND attempt = 1`,
		id).Scan(&ext, &outcome); err != nil || ext != "ext-1" || outcome != callstate.OutcomeNoAnswer {
		t.Fatalf("attempt 1 = %q %q, %v", ext, outcome, err)
	}
}

// TestApplyEventsDiallerReusesItsID: a dialler may answer every attempt
// of a call with the same id (the VA is sent our call id each time). The
// new attempt takes the id over; recording it must not fail.
func TestApplyEventsDiallerReusesItsID(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"retry_delays_secs": []int{60}})
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	accept := func(at time.Time) {
		t.Helper()
		e := ev(in.ID, id, callstate.DialAccepted, at)
		e.ExternalCallID = "va-" + id.String()
		if out := apply(t, s, e); !out[0].Decision.Changed {
			t.Fatalf("dial accepted at %v = %+v", at, out[0])
		}
	}
	claim(t, s, in.ID, t0)
	accept(t0)
	apply(t, s, callEnd(in.ID, id, 2, t0.Add(5*time.Second))) // short: retry
	if due, err := dbClockAt(s, t0.Add(2*time.Minute)).RequeueDue(t.Context(), uuid.Nil, 10); err != nil || len(due) != 1 {
		t.Fatalf("RequeueDue = %v, %v", due, err)
	}
	claim(t, s, in.ID, t0.Add(2*time.Minute))
	accept(t0.Add(2 * time.Minute))

	c := getCall(t, s, id)
	if c.Attempt != 2 || c.DialState != "accepted" || deref(c.ExternalCallID) != "va-"+id.String() {
		t.Fatalf("attempt 2 = %+v", c)
	}
	// The id now means attempt 2.
	start := store.CallEvent{IntegrationID: in.ID, ExternalCallID: "va-" + id.String(), Event: callstate.Event{Kind: callstate.CallStart},
		At: t0.Add(3 * time.Minute)}
	if out := apply(t, s, start); !out[0].Decision.Changed || out[0].Decision.Attempt != 2 {
		t.Fatalf("call_start by the reused id = %+v", out[0])
	}
}

func TestApplyEventsInOrder(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "min_call_duration_secs": 5, "retry_delays_secs": []int{60}})
	ids := queueCalls(t, s, in.ID, 3, t0)
	claim(t, s, in.ID, t0)
	a, b, c := ids[0], ids[1], ids[2]
	at := func(secs int) time.Time { return t0.Add(time.Duration(secs) * time.Second) }

	out := apply(t, s,
		ev(in.ID, a, callstate.CallStart, at(1)),
		ev(in.ID, b, callstate.CallStart, at(1)),
		callEnd(in.ID, a, 2, at(3)), // short: a retry
		callEnd(in.ID, b, 60, at(61)),
		ev(in.ID, b, callstate.Postcall, at(70)),
		// For c the end overtakes the start: the start is then stale.
		callEnd(in.ID, c, 30, at(31)),
		ev(in.ID, c, callstate.CallStart, at(32)),
	)
	changed := make([]bool, len(out))
	for i, o := range out {
		changed[i] = o.Decision.Changed
	}
	if want := []bool{true, true, true, true, true, true, false}; !slices.Equal(changed, want) {
		t.Fatalf("changed = %v, want %v", changed, want)
	}
	if !out[2].FreesSlot() || out[0].FreesSlot() || !out[5].FreesSlot() {
		t.Fatalf("FreesSlot: call_start %v, short end %v, end %v", out[0].FreesSlot(), out[2].FreesSlot(), out[5].FreesSlot())
	}
	want := map[uuid.UUID][]string{
		a: {"queued →queued #0", "dial queued→initiated #1", "call_start initiated→in_progress #1", "call_end in_progress→retry_scheduled #1"},
		b: {"queued →queued #0", "dial queued→initiated #1", "call_start initiated→in_progress #1", "call_end in_progress→waiting_postcall #1",
			"postcall waiting_postcall→completed #1"},
		// The stale start changes nothing but is kept: it was acknowledged.
		c: {"queued →queued #0", "dial queued→initiated #1", "call_end initiated→waiting_postcall #1",
			"call_start waiting_postcall→waiting_postcall #1"},
	}
	for id, h := range want {
		if got := history(t, s, id); !slices.Equal(got, h) {
			t.Errorf("history of %s:\n got %v\nwant %v", id, got, h)
		}
	}
	ca := getCall(t, s, a)
	if ca.Status != callstate.RetryScheduled || ca.NextRetryAt == nil || !ca.NextRetryAt.Equal(at(63)) || deref(ca.Outcome) != callstate.OutcomeShortCall ||
		ca.SlotTakenAt != nil || ca.DurationSecs == nil || *ca.DurationSecs != 2 {
		t.Fatalf("call a = %+v", ca)
	}
	if cb := getCall(t, s, b); cb.Status != callstate.Completed || cb.DurationSecs == nil || *cb.DurationSecs != 60 {
		t.Fatalf("call b = %+v", cb)
	}
}

func TestApplyEventsResolvesCalls(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10})
	other := activeIntegration(t, s, nil)
	c, c2 := newCall(in.ID, t0), newCall(in.ID, t0.Add(time.Millisecond))
	c.PhoneNumber, c2.PhoneNumber = "+380501112233", "+380501112244"
	insert(t, s, t0, c, c2)
	claim(t, s, in.ID, t0)
	uuidShaped := uuid.NewString() // diallers often use UUIDs of their own
	accepted := ev(in.ID, c.ID, callstate.DialAccepted, t0)
	accepted.ExternalCallID, accepted.ConversationID = "va-77", "conv-77"
	accepted2 := ev(in.ID, c2.ID, callstate.DialAccepted, t0)
	accepted2.ExternalCallID = uuidShaped
	apply(t, s, accepted, accepted2)

	tests := []struct {
		name string
		ev   store.CallEvent
		want uuid.UUID // uuid.Nil: not found
	}{
		{"our id", store.CallEvent{IntegrationID: in.ID, CallID: c.ID}, c.ID},
		{"our id given as the external id", store.CallEvent{IntegrationID: in.ID, ExternalCallID: c.ID.String()}, c.ID},
		{"the dialler's id", store.CallEvent{IntegrationID: in.ID, ExternalCallID: "va-77"}, c.ID},
		{"the dialler's id shaped like a UUID", store.CallEvent{IntegrationID: in.ID, ExternalCallID: uuidShaped}, c2.ID},
		{"the conversation id", store.CallEvent{IntegrationID: in.ID, ConversationID: "conv-77"}, c.ID},
		{"the phone number of a live call", store.CallEvent{IntegrationID: in.ID, Phone: "+380501112233"}, c.ID},
		{"an unknown dialler id", store.CallEvent{IntegrationID: in.ID, ExternalCallID: "va-78"}, uuid.Nil},
		{"an unknown id", store.CallEvent{IntegrationID: in.ID, CallID: uuid.New()}, uuid.Nil},
		{"another integration's call by id", store.CallEvent{IntegrationID: other.ID, CallID: c.ID}, uuid.Nil},
		{"another integration's call by dialler id", store.CallEvent{IntegrationID: other.ID, ExternalCallID: "va-77"}, uuid.Nil},
		{"another integration's call by phone", store.CallEvent{IntegrationID: other.ID, Phone: "+380501112233"}, uuid.Nil},
	}
	var batch []store.CallEvent
	for _, tt := range tests {
		// retry_due does not apply to an initiated call: every case finds
		// its call unchanged.
		tt.ev.Event, tt.ev.At = callstate.Event{Kind: callstate.RetryDue}, t0
		out := apply(t, s, tt.ev)
		if out[0].Found != (tt.want != uuid.Nil) || out[0].CallID != tt.want {
			t.Errorf("%s: found=%v call %v, want %v", tt.name, out[0].Found, out[0].CallID, tt.want)
		}
		batch = append(batch, tt.ev)
	}
	// One batch holding every kind of name resolves each event as alone.
	for i, out := range apply(t, s, batch...) {
		if out.Found != (tests[i].want != uuid.Nil) || out.CallID != tests[i].want {
			t.Errorf("%s, in a batch: found=%v call %v, want %v", tests[i].name, out.Found, out.CallID, tests[i].want)
		}
	}
	if got := getCall(t, s, c.ID); got.Status != callstate.Initiated {
		t.Fatalf("status %s", got.Status)
	}
}

// TestClaimCallsConcurrencyLimit has 20 dispatchers race for one
// integration's 3 slots while finished calls free them.
func TestClaimCallsConcurrencyLimit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const limit, calls, dispatchers = 3, 50, 20
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": limit})
	queueCalls(t, s, in.ID, calls, t0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	held := func() (int, error) {
		var n int
		err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM calls WHERE integration_id = $1 AND status IN ('initiated', 'in_progress')`,
			in.ID).Scan(&n)
		return n, err
	}
	var (
		total    atomic.Int64
		maxHeld  atomic.Int64
		mu       sync.Mutex
		claimed  = map[uuid.UUID]int{}
		failures []error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, err)
	}
	observe := func() {
		n, err := held()
		if err != nil {
			fail(err)
			return
		}
		for {
			m := maxHeld.Load()
			if int64(n) <= m || maxHeld.CompareAndSwap(m, int64(n)) {
				break
			}
		}
	}
	for range dispatchers {
		wg.Go(func() {
			for total.Load() < calls && ctx.Err() == nil {
				got, err := s.ClaimCalls(ctx, in.ID, t0, nil)
				if err != nil {
					fail(fmt.Errorf("claim: %w", err))
					return
				}
				total.Add(int64(len(got)))
				observe()
				for _, c := range got {
					mu.Lock()
					claimed[c.Call.ID]++
					mu.Unlock()
					if c.Call.Status != callstate.Initiated || c.Call.Attempt != 1 || c.Config.CallHandling.ConcurrencyLimit != limit {
						fail(fmt.Errorf("claimed call %+v", c.Call))
					}
					if _, err := s.ApplyEvents(ctx, []store.CallEvent{callEnd(in.ID, c.Call.ID, 60, t0.Add(time.Minute))}); err != nil {
						fail(fmt.Errorf("end call: %w", err))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("dispatchers did not claim every call in time: %d of %d", total.Load(), calls)
	}
	if m := maxHeld.Load(); m > limit {
		t.Fatalf("%d slots held at once, limit %d", m, limit)
	}
	if len(claimed) != calls || total.Load() != calls {
		t.Fatalf("%d claims of %d distinct calls, want %d each", total.Load(), len(claimed), calls)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("call %s claimed %d times", id, n)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM call_attempts WHERE integration_id = $1 AND attempt = 1`, in.ID); n != calls {
		t.Fatalf("%d attempts recorded, want %d", n, calls)
	}
	if n := countRows(t, s, `SELECT count(*) FROM calls WHERE integration_id = $1 AND status = 'waiting_postcall'`, in.ID); n != calls {
		t.Fatalf("%d calls ended, want %d", n, calls)
	}
}

func TestClaimCallsRespectsHeldSlots(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 2})
	ids := queueCalls(t, s, in.ID, 4, t0)
	if got := claim(t, s, in.ID, t0); !slices.Equal(got, ids[:2]) {
		t.Fatalf("first claim = %v, want %v", got, ids[:2])
	}
	if got := claim(t, s, in.ID, t0); len(got) != 0 {
		t.Fatalf("claimed %v with every slot held", got)
	}
	// call_start keeps the slot; the end frees it.
	apply(t, s, ev(in.ID, ids[0], callstate.CallStart, t0.Add(time.Second)))
	if got := claim(t, s, in.ID, t0); len(got) != 0 {
		t.Fatalf("claimed %v while calls are in progress", got)
	}
	apply(t, s, callEnd(in.ID, ids[0], 60, t0.Add(time.Minute)))
	if got := claim(t, s, in.ID, t0); !slices.Equal(got, ids[2:3]) {
		t.Fatalf("claim after one call ended = %v, want %v", got, ids[2:3])
	}
	if _, err := s.ClaimCalls(t.Context(), uuid.New(), t0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimCalls(unknown integration) = %v, want ErrNotFound", err)
	}
}

func TestClaimCallsPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 2})
	type spec struct {
		name     string
		priority int
		offset   time.Duration
	}
	specs := []spec{{"A", 0, 0}, {"B", 5, 3 * time.Second}, {"C", 0, time.Second}, {"D", 5, time.Second},
		{"E", -1, 0}, {"F", 0, 2 * time.Second}}
	names := map[uuid.UUID]string{}
	var calls []store.NewCall
	for _, sp := range specs {
		c := newCall(in.ID, t0.Add(sp.offset))
		c.Priority = sp.priority
		names[c.ID] = sp.name
		calls = append(calls, c)
	}
	insert(t, s, t0, calls...)

	var order []string
	for range 3 {
		ids := claim(t, s, in.ID, t0.Add(time.Minute))
		var events []store.CallEvent
		for _, id := range ids {
			order = append(order, names[id])
			events = append(events, callEnd(in.ID, id, 60, t0.Add(2*time.Minute)))
		}
		apply(t, s, events...)
	}
	if want := []string{"D", "B", "A", "C", "F", "E"}; !slices.Equal(order, want) {
		t.Fatalf("claim order %v, want %v", order, want)
	}
}

func TestClaimCallsCallingWindow(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	window := map[string]any{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": []int{1, 2, 3, 4, 5}}
	in := activeIntegration(t, s, map[string]any{"calling_window": window})
	ids := queueCalls(t, s, in.ID, 1, t0)
	open := func(now time.Time) func(config.Integration) bool {
		return func(cfg config.Integration) bool { return cfg.CallHandling.CallingWindow.Open(now) }
	}
	tests := []struct {
		name string
		now  time.Time
		want int
	}{
		{"Wednesday 22:00 in Kyiv", time.Date(2026, 1, 21, 20, 0, 0, 0, time.UTC), 0},
		{"Saturday 14:00 in Kyiv", time.Date(2026, 1, 24, 12, 0, 0, 0, time.UTC), 0},
		{"Thursday 08:59 in Kyiv", time.Date(2026, 1, 22, 6, 59, 0, 0, time.UTC), 0},
		{"Thursday 09:00 in Kyiv", time.Date(2026, 1, 22, 7, 0, 0, 0, time.UTC), 1},
	}
	for _, tt := range tests {
		got, err := s.ClaimCalls(t.Context(), in.ID, tt.now, open(tt.now))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Fatalf("%s: claimed %d, want %d", tt.name, len(got), tt.want)
		}
		if tt.want == 0 {
			if c := getCall(t, s, ids[0]); c.Status != callstate.Queued || c.Attempt != 0 {
				t.Fatalf("%s: call is %s at attempt %d", tt.name, c.Status, c.Attempt)
			}
			if n := countRows(t, s, `SELECT count(*) FROM call_attempts WHERE call_id = $1`, ids[0]); n != 0 {
				t.Fatalf("%s: %d attempts recorded", tt.name, n)
			}
		}
	}
}

func TestClaimCallsIntegrationStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tests := []struct {
		status string
		setup  func(id uuid.UUID)
		want   int
	}{
		{store.StatusNotConfigured, func(uuid.UUID) {}, 0},
		{store.StatusPaused, func(id uuid.UUID) {
			activate(t, s, id)
			if _, err := s.UpdateIntegration(ctx, "owner-a", "test", id, store.IntegrationFields{Status: ptr(store.StatusPaused)}, false); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{store.StatusFailed, func(id uuid.UUID) {
			activate(t, s, id)
			if err := s.SetIntegrationHealth(ctx, id, store.StatusFailed); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{store.StatusHasErrors, func(id uuid.UUID) {
			activate(t, s, id)
			if err := s.SetIntegrationHealth(ctx, id, store.StatusHasErrors); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{store.StatusActive, func(id uuid.UUID) { activate(t, s, id) }, 1},
	}
	for _, tt := range tests {
		in := createIntegration(t, s, "owner-a", tt.status)
		tt.setup(in.ID)
		if got := status(t, s, in.ID); got != tt.status {
			t.Fatalf("setup left the integration %s, want %s", got, tt.status)
		}
		queueCalls(t, s, in.ID, 1, t0)
		opened := false
		got, err := s.ClaimCalls(ctx, in.ID, t0, func(config.Integration) bool { opened = true; return true })
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("%s integration: claimed %d, want %d", tt.status, len(got), tt.want)
		}
		if tt.want == 0 && opened {
			t.Errorf("%s integration: asked whether dialling is open", tt.status)
		}
	}
}

func TestRequeueDueOfOneIntegration(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	policy := map[string]any{"retry_delays_secs": []int{60}}
	a, b := activeIntegration(t, s, policy), activeIntegration(t, s, policy)
	scheduleRetry := func(integ uuid.UUID) uuid.UUID {
		id := queueCalls(t, s, integ, 1, t0)[0]
		claim(t, s, integ, t0)
		apply(t, s, store.CallEvent{IntegrationID: integ, CallID: id, At: t0,
			Event: callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeBusy}})
		return id
	}
	callA, callB := scheduleRetry(a.ID), scheduleRetry(b.ID)
	now := t0.Add(2 * time.Minute)

	got, err := dbClockAt(s, now).RequeueDue(t.Context(), a.ID, 10)
	if err != nil || len(got) != 1 || got[0].CallID != callA || got[0].IntegrationID != a.ID {
		t.Fatalf("RequeueDue(a) = %+v, %v; want only a's call", got, err)
	}
	if c := getCall(t, s, callB); c.Status != callstate.RetryScheduled {
		t.Fatalf("b's call is %s after requeueing a's", c.Status)
	}
	got, err = dbClockAt(s, now).RequeueDue(t.Context(), uuid.Nil, 10)
	if err != nil || len(got) != 1 || got[0].CallID != callB {
		t.Fatalf("RequeueDue(all) = %+v, %v; want b's call", got, err)
	}
}

func TestRequeueDue(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	// Enough due calls that the schedulers' statements overlap: with fewer,
	// even an unlocked requeue rarely moves a call twice.
	const due, later, schedulers = 200, 10, 10
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": due + later, "retry_delays_secs": []int{60}})
	ids := queueCalls(t, s, in.ID, due+later, t0)
	claim(t, s, in.ID, t0)
	var events []store.CallEvent
	for i, id := range ids {
		at := t0 // retry at t0+1m
		if i >= due {
			at = t0.Add(10 * time.Minute) // retry at t0+11m
		}
		events = append(events, store.CallEvent{IntegrationID: in.ID, CallID: id, At: at,
			Event: callstate.Event{Kind: callstate.InitiationFailed, Reason: callstate.OutcomeBusy}})
	}
	apply(t, s, events...)
	if next, err := s.NextRetryAt(t.Context()); err != nil || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NextRetryAt = %v, %v; want %v", next, err, t0.Add(time.Minute))
	}

	now := t0.Add(2 * time.Minute)
	dbClockAt(s, now) // once: the schedulers below share it
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		moved = map[uuid.UUID]int{}
		errs  []error
	)
	for range schedulers {
		wg.Go(func() {
			for {
				got, err := s.RequeueDue(t.Context(), uuid.Nil, 3)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					moved[d.CallID]++
					if d.IntegrationID != in.ID {
						errs = append(errs, fmt.Errorf("due call %s of integration %s", d.CallID, d.IntegrationID))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(moved) != due {
		t.Fatalf("%d calls requeued, want %d", len(moved), due)
	}
	for i, id := range ids {
		c := getCall(t, s, id)
		retryDue := countRows(t, s, `SELECT count(*) FROM call_events WHERE call_id = $1 AND kind = 'retry_due'`, id)
		if i < due {
			if moved[id] != 1 || retryDue != 1 {
				t.Errorf("call %d moved %d times with %d history rows, want 1 and 1", i, moved[id], retryDue)
			}
			if c.Status != callstate.Queued || c.NextRetryAt != nil || !c.QueuedAt.Equal(now) || c.Attempt != 1 {
				t.Errorf("requeued call %d = %s, next %v, queued %v, attempt %d", i, c.Status, c.NextRetryAt, c.QueuedAt, c.Attempt)
			}
		} else if moved[id] != 0 || retryDue != 0 || c.Status != callstate.RetryScheduled {
			t.Errorf("call %d not yet due was moved (%d, %s)", i, moved[id], c.Status)
		}
	}
	if next, err := s.NextRetryAt(t.Context()); err != nil || !next.Equal(t0.Add(11*time.Minute)) {
		t.Fatalf("NextRetryAt = %v, %v; want %v", next, err, t0.Add(11*time.Minute))
	}
	// Requeued calls are dialled again as their second attempt.
	if got := claim(t, s, in.ID, now); len(got) != due {
		t.Fatalf("claimed %d requeued calls, want %d", len(got), due)
	}
	if c := getCall(t, s, ids[0]); c.Attempt != 2 {
		t.Fatalf("attempt %d after the retry's dial, want 2", c.Attempt)
	}
}

func TestOverdueCalls(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	short := activeIntegration(t, s, map[string]any{"concurrency_limit": 10, "max_call_duration_secs": 60})
	long := activeIntegration(t, s, nil) // 1800 s
	ids := queueCalls(t, s, short.ID, 4, t0)
	dialing, accepted, talking := ids[0], ids[1], ids[2]
	// Its dial's answer never came, but call_start did: it is live, so it
	// is not dial_lost (max_call_duration_secs still bounds it).
	answerLost := ids[3]
	claim(t, s, short.ID, t0)
	apply(t, s, ev(short.ID, accepted, callstate.DialAccepted, t0), ev(short.ID, talking, callstate.DialAccepted, t0),
		ev(short.ID, talking, callstate.CallStart, t0.Add(5*time.Second)), ev(short.ID, answerLost, callstate.CallStart, t0.Add(5*time.Second)))
	queueCalls(t, s, short.ID, 1, t0) // never claimed: never overdue
	longCall := queueCalls(t, s, long.ID, 1, t0)[0]
	claim(t, s, long.ID, t0)
	apply(t, s, ev(long.ID, longCall, callstate.DialAccepted, t0))
	ended := queueCalls(t, s, long.ID, 1, t0)[0] // freed its slot: never overdue
	claim(t, s, long.ID, t0)
	apply(t, s, ev(long.ID, ended, callstate.DialFailed, t0))

	const dialLost = 30 * time.Second
	tests := []struct {
		after time.Duration
		want  map[uuid.UUID]string
	}{
		{10 * time.Second, map[uuid.UUID]string{}},
		{31 * time.Second, map[uuid.UUID]string{dialing: "dial_lost"}},
		{61 * time.Second, map[uuid.UUID]string{dialing: "dial_lost", accepted: "timeout", talking: "timeout", answerLost: "timeout"}},
		{1801 * time.Second, map[uuid.UUID]string{dialing: "dial_lost", accepted: "timeout", talking: "timeout", answerLost: "timeout",
			longCall: "timeout"}},
	}
	overdue := func(now time.Time, limit int) ([]store.Overdue, error) {
		var all []store.Overdue
		for _, id := range []uuid.UUID{short.ID, long.ID} {
			got, err := dbClockAt(s, now).OverdueCalls(t.Context(), id, dialLost, limit)
			if err != nil {
				return nil, err
			}
			all = append(all, got...)
		}
		return all, nil
	}
	for _, tt := range tests {
		got, err := overdue(t0.Add(tt.after), 100)
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[uuid.UUID]string{}
		for _, o := range got {
			reasons[o.CallID] = o.Reason
			if o.Attempt != 1 {
				t.Errorf("t0+%v: overdue call at attempt %d", tt.after, o.Attempt)
			}
		}
		if len(reasons) != len(got) || len(reasons) != len(tt.want) {
			t.Errorf("t0+%v: overdue %v, want %v", tt.after, reasons, tt.want)
			continue
		}
		for id, reason := range tt.want {
			if reasons[id] != reason {
				t.Errorf("t0+%v: call %s reason %q, want %q", tt.after, id, reasons[id], reason)
			}
		}
	}
	if got, err := dbClockAt(s, t0.Add(time.Hour)).OverdueCalls(t.Context(), short.ID, dialLost, 2); err != nil || len(got) != 2 {
		t.Fatalf("OverdueCalls with limit 2 = %d, %v", len(got), err)
	}
}

func TestCancelCall(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 1})
	ids := queueCalls(t, s, in.ID, 2, t0)
	dialled := claim(t, s, in.ID, t0)[0]
	queued := ids[1]

	c, applied, err := s.CancelCall(ctx, "owner-a", queued, "trace-c", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != callstate.Cancelled || deref(c.Outcome) != callstate.OutcomeCancelled || applied.FreesSlot() {
		t.Fatalf("cancel queued call = %+v, %+v", c, applied)
	}
	// A dialled call may be live at the platform, which has no hang-up
	// request: cancelled, it keeps its slot until its call_end.
	c, applied, err = s.CancelCall(ctx, "owner-a", dialled, "", t0.Add(time.Minute))
	if err != nil || c.Status != callstate.Cancelled || c.SlotTakenAt == nil || applied.FreesSlot() {
		t.Fatalf("cancel dialled call = %+v, %+v, %v", c, applied, err)
	}
	if got := claim(t, s, in.ID, t0.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("claimed %v while the cancelled call is still live", got)
	}
	if overdue, err := dbClockAt(s, t0.Add(31*time.Minute)).OverdueCalls(ctx, in.ID, 2*time.Minute, 10); err != nil || len(overdue) != 1 || overdue[0].CallID != dialled {
		t.Fatalf("watchdog's hard limit sees %v, %v; want the cancelled live call", overdue, err)
	}
	rows, err := s.CallHistory(ctx, dialled)
	if err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	var detail map[string]any
	if err := json.Unmarshal(last.Detail, &detail); err != nil || last.Kind != "cancel" || detail["by"] != "owner-a" {
		t.Fatalf("last history row = %+v (%s)", last, last.Detail)
	}
	end := webhookEvent(in.ID, callstate.AttemptCallID(dialled, 1), callstate.CallEnd, "call_end", "end", t0.Add(90*time.Second))
	end.Event.DurationSecs = 30
	if out := apply(t, s, end); !out[0].FreesSlot() {
		t.Fatalf("call_end of the cancelled call = %+v, want the slot freed", out[0])
	}
	if c := getCall(t, s, dialled); c.Status != callstate.Cancelled || c.SlotTakenAt != nil {
		t.Fatalf("cancelled call after its call_end = %s, slot %v", c.Status, c.SlotTakenAt)
	}

	tests := []struct {
		name  string
		owner string
		id    uuid.UUID
		want  error
	}{
		{"already cancelled", "owner-a", queued, store.ErrConflict},
		{"another owner's call", "owner-b", dialled, store.ErrNotFound},
		{"unknown call", "owner-a", uuid.New(), store.ErrNotFound},
	}
	for _, tt := range tests {
		if _, _, err := s.CancelCall(ctx, tt.owner, tt.id, "", t0.Add(2*time.Minute)); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}

	// A completed call cannot be cancelled either.
	done := queueCalls(t, s, in.ID, 1, t0.Add(time.Minute))[0]
	claim(t, s, in.ID, t0.Add(time.Minute))
	apply(t, s, callEnd(in.ID, done, 60, t0.Add(2*time.Minute)), ev(in.ID, done, callstate.Postcall, t0.Add(3*time.Minute)))
	if _, _, err := s.CancelCall(ctx, "owner-a", done, "", t0.Add(4*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("cancel completed call = %v, want ErrConflict", err)
	}
	if c := getCall(t, s, done); c.Status != callstate.Completed {
		t.Fatalf("completed call is now %s", c.Status)
	}
}

func TestCallReads(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	a := activeIntegration(t, s, map[string]any{"concurrency_limit": 1})
	b := activeIntegration(t, s, nil)
	idle := createIntegration(t, s, "owner-a", "Idle") // not configured
	foreign := createIntegration(t, s, "owner-b", "Foreign")
	activate(t, s, foreign.ID)

	first := newCall(a.ID, t0)
	first.PhoneNumber, first.DynamicVariables = "+380501112233", json.RawMessage(`{"n":1}`)
	second := newCall(a.ID, t0.Add(time.Second))
	second.PhoneNumber, second.DynamicVariables = "+380501112233", json.RawMessage(`{"n":2}`)
	insert(t, s, t0, first, second)
	claim(t, s, a.ID, t0) // first is initiated, second waits
	queueCalls(t, s, b.ID, 2, t0.Add(2*time.Second))
	queueCalls(t, s, idle.ID, 1, t0)
	queueCalls(t, s, foreign.ID, 1, t0)

	count := func(f store.CallFilter) int {
		f.Limit = 100
		calls, err := s.ListCalls(ctx, "owner-a", f)
		if err != nil {
			t.Fatal(err)
		}
		return len(calls)
	}
	tests := []struct {
		name   string
		filter store.CallFilter
		want   int
	}{
		{"all of the owner's", store.CallFilter{}, 5},
		{"one integration", store.CallFilter{IntegrationID: b.ID}, 2},
		{"another owner's integration", store.CallFilter{IntegrationID: foreign.ID}, 0},
		{"status", store.CallFilter{Status: callstate.Initiated}, 1},
		{"phone", store.CallFilter{Phone: "+380501112233"}, 2},
		{"created from", store.CallFilter{CreatedFrom: t0.Add(time.Second)}, 3},
		{"created before", store.CallFilter{CreatedTo: t0.Add(time.Second)}, 2},
	}
	for _, tt := range tests {
		if got := count(tt.filter); got != tt.want {
			t.Errorf("ListCalls %s = %d calls, want %d", tt.name, got, tt.want)
		}
	}
	page, err := s.ListCalls(ctx, "owner-a", store.CallFilter{IntegrationID: a.ID, Order: "createdAt", Limit: 1, Offset: 1})
	if err != nil || len(page) != 1 || page[0].ID != second.ID {
		t.Fatalf("second page oldest first = %+v, %v", page, err)
	}
	if newest, _ := s.ListCalls(ctx, "owner-a", store.CallFilter{IntegrationID: a.ID, Limit: 1}); len(newest) != 1 || newest[0].ID != second.ID {
		t.Fatalf("newest first = %+v", newest)
	}

	st, err := s.IntegrationStats(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st != (store.Stats{Active: 1, Limit: 1, Queued: 1}) {
		t.Fatalf("stats = %+v", st)
	}
	gauges, err := s.Gauges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range gauges {
		if g.IntegrationID == a.ID {
			found = true
			if g.Active != 1 || g.Queued != 1 || g.Limit != 1 || g.Slug != a.Slug {
				t.Errorf("gauge = %+v", g)
			}
		}
	}
	if !found || len(gauges) != 4 {
		t.Fatalf("gauges = %+v, want one per integration", gauges)
	}

	// Only integrations that may dial and have queued calls are swept.
	withQueued, err := s.IntegrationsWithQueued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(withQueued, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	want := []uuid.UUID{a.ID, b.ID, foreign.ID}
	slices.SortFunc(want, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	if !slices.Equal(withQueued, want) {
		t.Fatalf("IntegrationsWithQueued = %v, want %v", withQueued, want)
	}

	// agent-init context: the call holding a slot wins over a newer queued one.
	vars, id, err := s.ContextByPhone(ctx, a.ID, "+380501112233")
	if err != nil || id != first.ID || string(vars) != `{"n": 1}` {
		t.Fatalf("ContextByPhone = %s %v %v, want the dialled call", vars, id, err)
	}
	if vars, id, err := s.ContextByPhone(ctx, a.ID, "+380000000000"); err != nil || vars != nil || id != uuid.Nil {
		t.Fatalf("ContextByPhone(unknown) = %s %v %v", vars, id, err)
	}
}

func TestNoteEvent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	id := queueCalls(t, s, in.ID, 1, t0)[0]
	claim(t, s, in.ID, t0)
	accepted := ev(in.ID, id, callstate.DialAccepted, t0)
	accepted.ConversationID = "conv-1"
	apply(t, s, accepted)
	before := history(t, s, id)

	note := store.CallEvent{IntegrationID: in.ID, ConversationID: "conv-1", Key: "POSTCALL:9", At: t0.Add(time.Minute),
		Detail: map[string]any{"audioBytes": 1234}}
	for range 2 { // the second is a redelivery
		if err := s.NoteEvent(t.Context(), note, "postcall_audio"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.NoteEvent(t.Context(), store.CallEvent{IntegrationID: in.ID, ConversationID: "conv-unknown", At: t0}, "postcall_audio"); err != nil {
		t.Fatalf("unmatched note: %v", err)
	}
	got := history(t, s, id)
	if want := append(slices.Clone(before), "postcall_audio → #1"); !slices.Equal(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
	if c := getCall(t, s, id); c.Status != callstate.Initiated {
		t.Fatalf("a note moved the call to %s", c.Status)
	}
}

func TestPruneKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	c := newCall(in.ID, t0)
	c.IdempotencyKeys = []string{"idem:a", "rec:b"}
	insert(t, s, t0, c)
	if n, err := dbClockAt(s, t0.Add(time.Hour)).PruneKeys(t.Context()); err != nil || n != 0 {
		t.Fatalf("PruneKeys before expiry = %d, %v", n, err)
	}
	if n, err := dbClockAt(s, t0.Add(store.IdempotencyWindow+time.Second)).PruneKeys(t.Context()); err != nil || n != 2 {
		t.Fatalf("PruneKeys after expiry = %d, %v; want 2", n, err)
	}
}

// TestPruneContactDials: a dial leaves contact_dials once no contact cap's
// window can hold it, and not before.
func TestPruneContactDials(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	for _, at := range []time.Time{t0, t0.Add(24 * time.Hour)} {
		if _, err := s.Pool().Exec(t.Context(), `INSERT INTO contact_dials (phone_key, dialled_at, integration_id, owner_id, call_id, attempt)
			VALUES ('\x01', $1, $2, 'owner-a', gen_random_uuid(), 1)`, at, in.ID); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM contact_dials`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	longest := time.Duration(config.ContactCapDaysMax) * 24 * time.Hour
	if _, err := dbClockAt(s, t0.Add(longest+time.Hour)).PruneKeys(t.Context()); err != nil || count() != 2 {
		t.Fatalf("PruneKeys within the longest cap window left %d dials (%v), want 2", count(), err)
	}
	if _, err := dbClockAt(s, t0.Add(store.ContactDialsKept+time.Hour)).PruneKeys(t.Context()); err != nil || count() != 1 {
		t.Fatalf("PruneKeys past the longest cap window left %d dials (%v), want the later one", count(), err)
	}
}
