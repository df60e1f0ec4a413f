package store_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
)

// TestIgnoredReportsAreKept: a platform's report that changes nothing —
// overtaken by a later one, or about a cancelled or finished call — is kept
// in the history under its attempt, flagged ignored with the reason; its
// repeated delivery is not kept twice; our own steps that change nothing
// (a stale retry_due) leave no row.
func TestIgnoredReportsAreKept(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, map[string]any{"concurrency_limit": 10})
	ids := queueCalls(t, s, in.ID, 2, t0)
	finished, cancelled := ids[0], ids[1]
	claim(t, s, in.ID, t0)
	ref := func(id uuid.UUID) string { return callstate.AttemptCallID(id, 1) }

	end := webhookEvent(in.ID, ref(finished), callstate.CallEnd, "call_end", "end-f", t0.Add(time.Minute))
	end.Event.DurationSecs = 60
	apply(t, s, end)
	post := webhookEvent(in.ID, ref(finished), callstate.Postcall, "postcall", "post-f", t0.Add(2*time.Minute))
	apply(t, s, post)
	// Overtaken: the start arrives after the end, then again (a redelivery).
	start := webhookEvent(in.ID, ref(finished), callstate.CallStart, "call_start", "start-f", t0.Add(3*time.Minute))
	apply(t, s, start)
	apply(t, s, start)
	apply(t, s, ev(in.ID, finished, callstate.RetryDue, t0.Add(4*time.Minute)))

	if _, _, err := s.CancelCall(t.Context(), "owner-a", cancelled, "", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	apply(t, s, webhookEvent(in.ID, ref(cancelled), callstate.CallStart, "call_start", "start-c", t0.Add(2*time.Minute)))

	if got, want := history(t, s, finished), []string{"queued →queued #0", "dial queued→initiated #1",
		"call_end initiated→waiting_postcall #1", "postcall waiting_postcall→completed #1", "call_start completed→completed #1"}; !slices.Equal(got, want) {
		t.Errorf("history of the finished call:\n got %v\nwant %v", got, want)
	}
	if got, want := history(t, s, cancelled), []string{"queued →queued #0", "dial queued→initiated #1",
		"cancel initiated→cancelled #1", "call_start cancelled→cancelled #1"}; !slices.Equal(got, want) {
		t.Errorf("history of the cancelled call:\n got %v\nwant %v", got, want)
	}
	rows, err := s.CallHistory(t.Context(), finished)
	if err != nil {
		t.Fatal(err)
	}
	var detail map[string]any
	if err := json.Unmarshal(rows[len(rows)-1].Detail, &detail); err != nil || detail["ignored"] != true || detail["reason"] == nil {
		t.Errorf("the kept start's detail = %s, want ignored with a reason", rows[len(rows)-1].Detail)
	}
}
