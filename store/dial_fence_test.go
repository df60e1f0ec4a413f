package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestDialResultFencedByClaim: a dial's result that gives the call back
// (aborted before sending, deferred by the pre-dial check) commits, but
// its answer is lost; by the time the dispatcher applies it again, the
// call was claimed anew at the same attempt and is being dialled. The
// second application must change nothing: the call keeps its slot and its
// attempt, so the new dial is neither orphaned nor repeated.
func TestDialResultFencedByClaim(t *testing.T) {
	t.Parallel()
	for _, kind := range []callstate.Kind{callstate.DialAborted, callstate.DialDeferred} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.NewStore(t)
			in := activeIntegration(t, s, map[string]any{"concurrency_limit": 1})
			call := newCall(in.ID, t0)
			insert(t, s, t0, call)
			first := claimOne(t, s, in.ID, t0)

			ev := store.CallEvent{IntegrationID: in.ID, CallID: call.ID, Attempt: first.Call.Attempt, Claim: first.Claim,
				Event: callstate.Event{Kind: kind, RetryAfter: time.Minute}, At: t0.Add(time.Second)}
			s.SetCommitFault(store.LoseCommitAnswers(1, store.PathApplyEvents))
			if _, err := s.ApplyEvents(t.Context(), []store.CallEvent{ev}); !store.IsTransient(err) {
				t.Fatalf("apply with its COMMIT answer lost: %v, want a transient error", err)
			}
			s.SetCommitFault(nil)

			now := t0.Add(2 * time.Minute)
			if _, err := dbClockAt(s, now).RequeueDue(t.Context(), in.ID, 10); err != nil {
				t.Fatal(err)
			}
			second := claimOne(t, s, in.ID, now)
			if second.Call.Attempt != first.Call.Attempt || second.Claim == first.Claim {
				t.Fatalf("claimed again at attempt %d (token %s), first at %d (token %s)",
					second.Call.Attempt, second.Claim, first.Call.Attempt, first.Claim)
			}

			// The dispatcher's retry of the first result.
			applied, err := s.ApplyEvents(t.Context(), []store.CallEvent{ev})
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != 1 || !applied[0].Duplicate || applied[0].Decision.Changed {
				t.Errorf("the retried result was applied: %+v", applied)
			}
			var status, dialState string
			var slotHeld bool
			var token uuid.UUID
			if err := s.Pool().QueryRow(t.Context(), `SELECT c.status, c.dial_state, c.slot_taken_at IS NOT NULL, a.claim_token
				FROM calls c JOIN call_attempts a ON a.call_id = c.id AND a.attempt = c.attempt WHERE c.id = $1`, call.ID).
				Scan(&status, &dialState, &slotHeld, &token); err != nil {
				t.Fatalf("the new claim's attempt row: %v", err)
			}
			if status != "initiated" || dialState != "dialing" || !slotHeld || token != second.Claim {
				t.Errorf("after the retried result: status %s, dial_state %s, slot held %v, attempt's claim %s; "+
					"want initiated, dialing, held, %s", status, dialState, slotHeld, token, second.Claim)
			}
		})
	}
}

func claimOne(t *testing.T, s *store.Store, integ uuid.UUID, now time.Time) store.Claimed {
	t.Helper()
	claimed, err := dbClockAt(s, now).ClaimCalls(t.Context(), integ, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 {
		t.Fatalf("claimed %d calls, want 1", len(claimed))
	}
	return claimed[0]
}
